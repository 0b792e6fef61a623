"""`run_cli`, which the other tests use to run `mtlrun` in their own process: it gives what a
new process would and leaves this one as it found it, however many times it is called."""

import logging
import os
import signal
import sys

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
    args = ["-m", *TINY, "trainer.epochs=1", "backbone.hidden_dims=[32]", "seed=0,1"]
    for cwd in (tmp_path / "first", tmp_path / "second"):  # Hydra's global state: cleared
        cwd.mkdir()
        result = run_cli(cwd, "train", *args)
        assert result.returncode == 0, result.stderr
        assert "[HYDRA] Launching 2 jobs locally" in result.stdout  # Hydra's log, captured
        sweep = result.stdout.strip().splitlines()[-1]
        assert sweep.startswith(str(cwd / "outputs" / "multirun"))
        assert len(list(cwd.glob("outputs/multirun/*/*/*/summary.json"))) == 2
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
    for args in (["train", "backbone=vea"], ["train", "+experiment=ae_mnist", "--cfg", "job"]):
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
