"""Damaged run folders: a meta.json, summary.json, metrics.jsonl or config that is binary, not a
JSON object, or cut off never crashes `list`, `report`, `resume` or `reproduce`; a run killed
with SIGKILL shows as crashed; orphaned temporary files go with the next write."""

import json
import os
import platform
import signal
import time
from pathlib import Path

import pytest

from mtlrun.errors import DamagedRunFile
from mtlrun.runfolder import (
    RunFolder,
    read_json,
    read_records,
    run_status,
    this_process,
    write_json,
)
from tests.fake_runs import make_run
from tests.helpers import dead_pid, run_cli, start_mtlrun

DAMAGES = {
    "binary": b"\x00\xff\xfe\x80 not text",
    "cut-off": b'{"status": "completed", "start_ti',
    "a-list": b"[1, 2, 3]",
    "a-number": b"42",
    "empty": b"",
}


@pytest.mark.parametrize("damage", DAMAGES.values(), ids=DAMAGES.keys())
def test_a_json_file_that_is_not_an_object_is_damaged_with_its_name(tmp_path, damage):
    path = tmp_path / "meta.json"
    path.write_bytes(damage)
    with pytest.raises(DamagedRunFile) as error:
        read_json(path)
    message = str(error.value)
    assert message.startswith(f"{path} is damaged (")
    assert message.endswith("restore it from a copy, or train the run again")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b'{"epoch": 1}\n{"epoch": 2, "spl', "line 2 is not JSON"),
        (b'{"epoch": 1}\n[1, 2]\n', "line 2 is not a JSON object"),
        (b"\x00\xff\xfe\n", "not text"),
    ],
    ids=["cut-off", "a-list", "binary"],
)
def test_a_damaged_metrics_log_names_the_line(tmp_path, content, why):
    path = tmp_path / "metrics.jsonl"
    path.write_bytes(content)
    with pytest.raises(DamagedRunFile, match=why):
        read_records(path)


def sweep_of_three(root: Path) -> list[Path]:
    metrics = {"val/reconstruction/nelbo": 100.0, "val/digit/acc": 0.9}
    return [make_run(root / str(job), ["seed=" + str(job)], metrics) for job in range(3)]


FILES = ["meta.json", "summary.json", "metrics.jsonl", "config.resolved.yaml"]


@pytest.mark.parametrize("damaged_file", FILES)
@pytest.mark.parametrize("damage", ["binary", "cut-off", "a-list"])
def test_list_and_report_skip_a_damaged_run_with_a_one_line_warning(tmp_path, damaged_file, damage):
    runs = sweep_of_three(tmp_path / "sweep")
    (runs[1] / damaged_file).write_bytes(DAMAGES[damage])
    listing = run_cli(tmp_path, "list", str(tmp_path / "sweep"), check=True)
    warnings = listing.stderr.splitlines()
    assert len(warnings) == 1
    assert warnings[0].startswith(f"mtlrun: warning: skipping {runs[1]}: {runs[1] / damaged_file}")
    assert str(runs[0]) in listing.stdout and str(runs[2]) in listing.stdout
    assert str(runs[1]) not in listing.stdout

    report = run_cli(tmp_path, "report", str(tmp_path / "sweep"), check=True)
    assert report.stderr.splitlines()[0] == warnings[0]
    assert "Traceback" not in report.stderr


@pytest.mark.parametrize("damaged_file", ["meta.json", "summary.json", "config.resolved.yaml"])
def test_reproduce_and_resume_stop_with_one_line_on_a_damaged_run(tmp_path, damaged_file):
    (run,) = sweep_of_three(tmp_path / "sweep")[:1]
    RunFolder(run).update_meta(status="interrupted")
    RunFolder(run).checkpoints.mkdir()
    RunFolder(run).checkpoint("last").write_bytes(b"")
    path = run / damaged_file
    path.write_bytes(DAMAGES["binary"])
    for command in ("reproduce", "resume"):
        if command == "resume" and damaged_file == "summary.json":
            continue  # resume does not read it
        result = run_cli(tmp_path, command, str(run))
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.startswith(f"mtlrun: error: {path} is damaged (not text:"), command
        assert len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "outputs").exists()  # no new run folder was started


def test_resume_stops_on_a_damaged_metrics_log_before_training(tmp_path):
    (run,) = sweep_of_three(tmp_path / "sweep")[:1]
    folder = RunFolder(run)
    folder.update_meta(status="interrupted")
    folder.checkpoints.mkdir()
    folder.checkpoint("last").write_bytes(b"")
    folder.metrics_path.write_bytes(b'{"epoch": 1, "split": "tr')
    meta_before = folder.meta_path.read_bytes()
    result = run_cli(tmp_path, "resume", str(run))
    assert result.returncode == 2
    assert result.stderr == (
        f"mtlrun: error: {folder.metrics_path} is damaged (line 1 is not JSON: Unterminated "
        "string starting at: line 1 column 23 (char 22)); restore it from a copy, or train the "
        "run again\n"
    )
    assert folder.meta_path.read_bytes() == meta_before  # still interrupted, not failed


def test_a_run_whose_process_is_gone_is_crashed_and_a_live_one_running():
    alive = {"status": "running", **this_process()}
    assert run_status(alive) == "running"
    gone = {"status": "running", "host": platform.node(), "pid": dead_pid()}
    assert run_status(gone) == "crashed"
    # The pid given again to a later process: its start time tells them apart.
    reused = {**alive, "process_start": alive["process_start"] - 1}
    assert run_status(reused) == "crashed"
    elsewhere = {**gone, "host": "another-host"}
    assert run_status(elsewhere) == "running"  # another machine's process: cannot tell
    assert run_status({"status": "completed", **this_process()}) == "completed"


TRAIN = [
    "dataset=synthetic",
    "dataset.n_train=4096",
    "dataset.n_test=128",
    "dataset.val_size=128",
    "device=cpu",
    "trainer.epochs=50",
    "trainer.batch_size=16",
    "trainer.progress=false",
]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_is_listed_as_crashed_and_can_be_resumed(tmp_path):
    process = start_mtlrun(tmp_path, "train", *TRAIN, "hydra.run.dir=killed")
    run = tmp_path / "killed"
    deadline = time.time() + 120
    while not RunFolder(run).checkpoint("last").is_file() and time.time() < deadline:
        time.sleep(0.05)
    still = run_cli(tmp_path, "resume", str(run))
    assert still.returncode == 2
    assert still.stderr == (
        f"mtlrun: error: {run} is still being trained (pid {process.pid} on {platform.node()}); "
        "stop it first (Ctrl-C, or kill -INT PID), then resume\n"
    )
    process.send_signal(signal.SIGKILL)
    process.communicate()
    assert read_json(run / "meta.json")["status"] == "running"  # as the killed run left it
    listing = run_cli(tmp_path, "list", str(tmp_path), check=True)
    assert " crashed " in listing.stdout


def test_the_next_write_removes_the_temporary_files_of_killed_writers(tmp_path):
    target = tmp_path / "meta.json"
    gone = dead_pid()
    host = platform.node()
    orphan = tmp_path / f".meta.json.{host}.{gone}.abc123.tmp"
    live = tmp_path / f".meta.json.{host}.{os.getppid()}.def456.tmp"  # a writer still at work
    other_host = tmp_path / f".meta.json.elsewhere.{gone}.ghi789.tmp"
    unrelated = tmp_path / f".summary.json.{host}.{gone}.jkl012.tmp"
    for path in (orphan, live, other_host, unrelated):
        path.write_text("half")
    write_json(target, {"status": "running"})
    assert json.loads(target.read_text()) == {"status": "running"}
    assert not orphan.exists()
    assert live.exists() and other_host.exists() and unrelated.exists()


def test_when_every_run_is_damaged_list_says_they_were_skipped(tmp_path):
    (run,) = sweep_of_three(tmp_path / "sweep")[:1]
    for other in ("1", "2"):
        (tmp_path / "sweep" / other / "meta.json").write_bytes(DAMAGES["binary"])
    (run / "meta.json").write_bytes(DAMAGES["a-list"])
    result = run_cli(tmp_path, "list", str(tmp_path / "sweep"))
    assert result.returncode == 2
    assert len(result.stderr.splitlines()) == 4  # three warnings, then the error
    assert result.stderr.splitlines()[-1] == (
        f"mtlrun: error: no runs under {tmp_path / 'sweep'} that can be read (3 skipped, above)"
    )
