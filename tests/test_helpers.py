"""`run_cli`, which the other tests use to run `mtlrun` in their own process: it gives what a
new process would and leaves this one as it found it, however many times it is called."""

import logging
import os
import signal
import sys
from pathlib import Path

from tests.conftest import TINY
from tests.helpers import run_cli, run_mtlrun


def test_two_runs_in_a_row_write_under_their_folder_and_leave_the_process_as_it_was(tmp_path):
    before = (
        os.getcwd(),
        sys.argv,
        dict(os.environ),
        logging.getLogger().handlers[:],
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
    )
    small = [*TINY, "trainer.epochs=1", "backbone.hidden_dims=[32]"]
    # A run, then a sweep: Hydra's global state from the first is cleared for the second.
    for cwd, args in ((tmp_path / "first", small), (tmp_path / "second", ["-m", *small])):
        cwd.mkdir()
        result = run_cli(cwd, "train", *args)
        assert result.returncode == 0, result.stderr
        assert Path(result.stdout.strip().splitlines()[-1]).is_relative_to(cwd / "outputs")
        assert len(list(cwd.glob("outputs/**/summary.json"))) == 1
    assert "[HYDRA] Launching 1 jobs locally" in result.stdout  # Hydra's log, captured
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first", "second"]
    after = (
        os.getcwd(),
        sys.argv,
        dict(os.environ),  # MTLRUN_COMMAND, which the dispatcher sets, gone again
        logging.getLogger().handlers[:],
        signal.getsignal(signal.SIGINT),
        signal.getsignal(signal.SIGTERM),
    )
    assert after == before


def test_the_same_output_and_status_as_a_process(tmp_path):
    args = ["train", "+experiment=ae_mnist", "--cfg", "job"]  # what Hydra itself prints
    here, there = run_cli(tmp_path, *args), run_mtlrun(tmp_path, *args)
    assert (here.returncode, here.stdout, here.stderr) == (
        there.returncode,
        there.stdout,
        there.stderr,
    )


def test_an_exception_is_its_traceback_and_status_1_as_in_a_process(tmp_path, monkeypatch):
    from mtlrun import cli

    def broken() -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "main", broken)
    result = run_cli(tmp_path, "list")
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback")
    assert result.stderr.endswith("RuntimeError: a bug\n")
