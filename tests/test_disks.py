"""Full and read-only disks: one line naming the folder, no half-written file, meta.json says
failed where it can still be written; eval, sample and report write elsewhere with out=DIR.

The full disk is real: /dev/full (every write fails with ENOSPC), and, where this process may
mount file systems (root, as in CI), a tmpfs too small for a checkpoint. The read-only folder
is a tmpfs remounted read-only (root) or a folder without write permission (other users)."""

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import run_cli

TINY = [
    "dataset=synthetic",
    "dataset.n_train=256",
    "dataset.n_test=64",
    "dataset.val_size=64",
    "device=cpu",
    "trainer.epochs=1",
    "trainer.batch_size=64",
    "trainer.progress=false",
    "backbone.hidden_dims=[32]",
    "tasks.reconstruction.iw_samples=0",
]


def mount(target: Path, options: str) -> bool:
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True
    )
    return result.returncode == 0


@pytest.fixture
def tiny_disk(tmp_path) -> Iterator[Path]:
    """A 200 KiB file system: room for a run folder's small files, not for a checkpoint."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if not mount(folder, "size=200k"):
        pytest.skip("mounting a tmpfs needs root (the /dev/full test covers a full disk)")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def test_a_disk_that_fills_up_during_training_is_one_line(tiny_disk):
    run = tiny_disk / "run"
    result = run_cli(tiny_disk.parent, "train", *TINY, f"hydra.run.dir={run}")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"mtlrun: error: cannot write in {run / 'checkpoints'}: no space left on the device; "
        f"free it, then continue with `mtlrun resume {run}`\n"
    )
    assert not list(run.rglob("*.tmp"))  # no half-written checkpoint
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed"
    assert meta["error"].startswith("cannot write in")


def test_a_log_on_a_full_device_fails_the_run_in_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").symlink_to("/dev/full")  # every write: ENOSPC
    result = run_cli(tmp_path, "train", *TINY, f"hydra.run.dir={run}")
    assert result.returncode == 2, result.stderr
    assert result.stderr == (
        f"mtlrun: error: cannot write in {run}: no space left on the device; free it, then "
        f"continue with `mtlrun resume {run}`\n"
    )
    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "failed"
    assert meta["error"] == f"cannot write in {run}: no space left on the device"
    assert (run / "config.resolved.yaml").is_file()  # what was written before is kept


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("trained")
    run = cwd / "run"
    run_cli(cwd, "train", *TINY, "backbone=vae", f"hydra.run.dir={run}", check=True)
    return run


@pytest.fixture
def read_only_copy(finished_run, tmp_path) -> Iterator[Path]:
    """A copy of the finished run on a file system (or in a folder) nothing can write to."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    mounted = os.geteuid() == 0 and mount(folder, "size=50m")
    shutil.copytree(finished_run, folder / "run")
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    elif os.geteuid() == 0:
        pytest.skip("root ignores permissions, and mounting a read-only tmpfs failed")
    else:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & 0o555)
    yield folder / "run"
    if mounted:
        subprocess.run(["umount", str(folder)], check=True)
    else:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode | 0o700)


def test_eval_sample_and_report_on_a_read_only_run_name_it_and_write_elsewhere(
    read_only_copy, tmp_path
):
    run = read_only_copy
    why = "the file system is read-only" if os.geteuid() == 0 else "permission denied"
    for command, options in (("eval", []), ("sample", ["n=4"]), ("report", [])):
        refused = run_cli(tmp_path, command, str(run), *options)
        assert refused.returncode == 2, (command, refused.stderr)
        assert refused.stderr == (
            f"mtlrun: error: cannot write in {run}: {why}; pass out=DIR to write elsewhere\n"
        ), command

    run_cli(tmp_path, "eval", str(run), f"out={tmp_path / 'eval'}", check=True)
    evaluation = json.loads((tmp_path / "eval" / "best.json").read_text())
    assert "test/reconstruction/nelbo" in evaluation["metrics"]

    sample = run_cli(tmp_path, "sample", str(run), "n=4", f"out={tmp_path / 's'}", check=True)
    assert {Path(line).parent for line in sample.stdout.split()} == {tmp_path / "s"}
    assert (tmp_path / "s" / "recon_best_n4.png").stat().st_size > 0

    run_cli(tmp_path, "report", str(run), f"out={tmp_path / 'r'}", check=True)
    html = (tmp_path / "r" / "report.html").read_text()
    # The report's links reach the run's image grids from where the report is.
    assert os.path.relpath(run / "images", tmp_path / "r") in html
    assert (tmp_path / "r" / "report.json").is_file()


def test_the_api_names_a_read_only_output_dir_before_training(tmp_path):
    import mtlrun
    from mtlrun.errors import UserError

    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0 or not mount(folder, "size=1m,ro"):
        pytest.skip("a read-only file system needs root to mount (a file is tested in test_api)")
    try:
        with pytest.raises(UserError) as error:
            mtlrun.train(TINY, output_dir=folder)
        assert str(error.value) == (
            f"output_dir={folder}: cannot write in {folder}: the file system is read-only; "
            "pass another output_dir"
        )
    finally:
        subprocess.run(["umount", str(folder)], check=True)
