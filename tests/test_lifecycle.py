"""reproduce, resume, eval and sample on real run folders, through the CLI."""

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.helpers import press_twice, run_cli, run_mtlrun, start_mtlrun

TINY_ARGS = [
    "dataset=synthetic",
    "dataset.n_train=1024",
    "dataset.val_size=128",
    "dataset.n_test=128",
    "device=cpu",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "trainer.deterministic=true",
    "+task@tasks.class=classification",
    "tasks.reconstruction.iw_samples=4",
]


def last_line(result: subprocess.CompletedProcess) -> Path:
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("finished")
    return last_line(run_cli(cwd, "train", *TINY_ARGS, "trainer.epochs=2", check=True))


def test_reproduce_gives_identical_numbers_and_fails_when_they_differ(finished_run, tmp_path):
    same = run_cli(tmp_path, "reproduce", str(finished_run), check=True)
    assert "reproduced (bit for bit)" in same.stdout
    new_dir = last_line(same)
    assert new_dir != finished_run and new_dir.is_dir()
    original = json.loads((finished_run / "summary.json").read_text())["metrics"]
    assert json.loads((new_dir / "summary.json").read_text())["metrics"] == original

    summary = json.loads((finished_run / "summary.json").read_text())
    summary["metrics"]["test/class/acc"] += 0.01  # as if the original had other numbers
    (finished_run / "summary.json").write_text(json.dumps(summary))
    try:
        changed = run_cli(tmp_path, "reproduce", str(finished_run))
    finally:
        summary["metrics"]["test/class/acc"] -= 0.01
        (finished_run / "summary.json").write_text(json.dumps(summary))
    assert changed.returncode == 1
    assert "NOT reproduced" in changed.stdout


def test_a_run_copied_from_another_machine_uses_this_machines_data_root(tmp_path):
    from mtlrun.rebuild import run_config

    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "config.yaml").write_text(
        "dataset:\n  name: mnist\n  root: /cluster/data\n"
    )
    assert run_config(tmp_path).dataset.root is None  # so $MTLRUN_DATA, else ./data
    (tmp_path / ".hydra" / "config.yaml").write_text(f"dataset:\n  root: {tmp_path}\n")
    assert run_config(tmp_path).dataset.root == str(tmp_path)


def test_eval_and_sample_write_their_files(finished_run, tmp_path):
    run_cli(tmp_path, "eval", str(finished_run), "checkpoint=last", check=True)
    evaluation = json.loads((finished_run / "eval" / "last.json").read_text())
    summary = json.loads((finished_run / "summary.json").read_text())
    # The last checkpoint is the final model: its test accuracy is the summary's.
    assert evaluation["metrics"]["test/class/acc"] == summary["metrics"]["test/class/acc"]
    assert "val/class/acc" in evaluation["metrics"]

    sample = run_cli(tmp_path, "sample", str(finished_run), "n=16", check=True)
    files = {Path(line).name for line in sample.stdout.split()}
    assert files == {"recon_best_n16.png", "interpolation_best.png", "prior_best_n16_seed0.png"}
    assert all((finished_run / "samples" / name).stat().st_size > 0 for name in files)


def test_bad_run_folders_are_one_line_errors(finished_run, tmp_path):
    missing = run_cli(tmp_path, "eval", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert missing.stderr == (
        f"mtlrun: error: {tmp_path / 'nope'} does not exist; pass a run folder "
        "(see `mtlrun list`)\n"
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli(tmp_path, "reproduce", str(empty))
    assert result.returncode == 2
    assert result.stderr == (
        f"mtlrun: error: {empty} is not a run folder (it has no config.resolved.yaml or "
        ".hydra/config.yaml); pass a folder under outputs/runs/\n"
    )
    unfinished = tmp_path / "unfinished"  # a run's config, but no summary.json
    unfinished.mkdir()
    shutil.copy(finished_run / "config.resolved.yaml", unfinished)
    result = run_cli(tmp_path, "reproduce", str(unfinished))
    assert result.returncode == 2
    assert result.stderr == (
        f"mtlrun: error: {unfinished} has no summary.json: only finished runs can be "
        "reproduced; an interrupted one continues with `mtlrun resume`\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "unfinished"]  # no outputs/


def test_a_run_stopped_inside_an_epoch_resumes_through_the_cli_to_the_same_numbers(
    finished_run, tmp_path, monkeypatch
):
    """The fast tier's stop and `mtlrun resume`, in this process: a SIGINT sent to it after the
    second step of the second epoch (28 steps an epoch), which the loop's own handler takes;
    the test below does it to a real process from outside."""
    from mtlrun.signals import StopSignals

    check, checks = StopSignals.check, []

    def check_after_ctrl_c(stop: StopSignals) -> None:
        checks.append(1)  # once built, then after each step and each epoch's checkpoint
        if len(checks) == 1 + 28 + 1 + 2:
            os.kill(os.getpid(), signal.SIGINT)
        check(stop)

    monkeypatch.setattr(StopSignals, "check", check_after_ctrl_c)
    stopped = run_cli(tmp_path, "train", *TINY_ARGS, "trainer.epochs=2")
    assert stopped.returncode == 130, stopped.stderr
    run_dir = last_line(stopped)
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    assert "SIGINT: stopped; continue with `mtlrun resume" in stopped.stdout
    monkeypatch.setattr(StopSignals, "check", check)

    resumed = run_cli(tmp_path, "resume", str(run_dir), check=True)
    assert "resuming at epoch 2, batch 2" in resumed.stdout
    expected = json.loads((finished_run / "summary.json").read_text())["metrics"]
    assert json.loads((run_dir / "summary.json").read_text())["metrics"] == expected
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["split"] == "train"] == [1, 2]


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_interrupted_then_resumed_run_ends_with_the_uninterrupted_numbers(
    finished_run, tmp_path, signum
):
    args = [*TINY_ARGS, "trainer.epochs=4"]
    reference = last_line(run_cli(tmp_path / ".." / tmp_path.name, "train", *args, check=True))
    expected = json.loads((reference / "summary.json").read_text())["metrics"]

    work = tmp_path / "interrupted"
    work.mkdir()
    process = start_mtlrun(work, "train", *args)
    deadline = time.time() + 120
    while not list(work.glob("outputs/runs/*/*/checkpoints/last.pt")) and time.time() < deadline:
        time.sleep(0.05)  # the first epoch is done: the signal lands in the second
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    run_dir = Path(stdout.strip().splitlines()[-1])
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "interrupted"
    assert "Traceback" not in stderr
    assert not (run_dir / "summary.json").exists()

    # An override that would change the experiment is refused, and the run is left as it was.
    refused = run_cli(work, "resume", str(run_dir), "trainer.batch_size=32")
    assert refused.returncode == 2
    assert refused.stderr == (
        "mtlrun: error: trainer.batch_size would change the experiment half-way; resume accepts "
        "only device, trainer.progress, trainer.devices; to train differently, start a new run "
        "with `mtlrun train` (or `mtlrun reproduce RUN key=value`)\n"
    )
    assert json.loads((run_dir / "meta.json").read_text()) == meta

    run_cli(work, "resume", str(run_dir), "device=cpu", "trainer.progress=false", check=True)
    resumed = json.loads((run_dir / "meta.json").read_text())
    assert resumed["status"] == "completed"
    assert [r["overrides"] for r in resumed["resumes"]] == [
        ["device=cpu", "trainer.progress=false"]
    ]
    assert json.loads((run_dir / "summary.json").read_text())["metrics"] == expected
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["split"] == "train"] == [1, 2, 3, 4]


def test_ctrl_c_during_the_final_test_evaluation_stops_and_resume_finishes(tmp_path, monkeypatch):
    """The stop request is honoured between the final evaluation's batches, not ignored until
    the run completes; `resume` then redoes only the final part and ends with the numbers of
    an uninterrupted run."""
    import mtlrun.loop
    from mtlrun.lifecycle import train
    from tests.conftest import compose_config

    cfg = compose_config([*TINY_ARGS, "trainer.epochs=2", "trainer.eval_batch_size=16"])
    expected = train(cfg, tmp_path / "reference")["metrics"]
    evaluate = mtlrun.loop.evaluate
    batches_seen = []

    def interrupted_at_the_end(experiment, split, name, final=False, after_batch=None):
        def after_batch_then_ctrl_c():
            batches_seen.append(1)
            if len(batches_seen) == 2:
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, two batches in
            after_batch()

        if not final:
            return evaluate(experiment, split, name)
        return evaluate(experiment, split, name, final, after_batch_then_ctrl_c)

    monkeypatch.setattr(mtlrun.loop, "evaluate", interrupted_at_the_end)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir)
    assert len(batches_seen) == 2  # stopped at once, not after the 8 batches of the test split
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    assert not (run_dir / "summary.json").exists()
    assert "SIGINT: stopped; continue with `mtlrun resume" in (run_dir / "train.log").read_text()

    monkeypatch.setattr(mtlrun.loop, "evaluate", evaluate)
    assert train(cfg, run_dir, resume=True)["metrics"] == expected
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "completed"
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records].count("test") == 1


# A plug-in that says it is being imported, then takes its time: a Ctrl-C sent once it has
# said so lands in mtlrun's start-up, before any training, however fast the machine is.
SLOW_PLUGIN = """
import pathlib, time
pathlib.Path("importing").touch()
time.sleep(120)
"""


@pytest.mark.slow
def test_ctrl_c_during_start_up_is_one_line(tmp_path):
    (tmp_path / "slow_plugin.py").write_text(SLOW_PLUGIN)
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"MTLRUN_PLUGINS": "slow_plugin", "PYTHONPATH": os.pathsep.join(path)}
    process = start_mtlrun(tmp_path, "train", *TINY_ARGS, env=env)
    deadline = time.monotonic() + 120
    while not (tmp_path / "importing").exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert stderr == "mtlrun: interrupted\n"


# A classification task whose final evaluation says so (the file `final-evaluation`), then
# waits while the file `hold` exists: signals sent then land inside it on any machine, and
# the hot path is what it always is.
HELD_AT_THE_END = """
import time
from pathlib import Path

from mtlrun.parts import TASKS
from mtlrun.schemas.task import ClassificationConfig
from mtlrun.tasks.classification import Classification


@TASKS.register("held_classification", schema=ClassificationConfig)
class HeldClassification(Classification):
    def final_metric_sums(self, head, encoding, batch):
        Path("final-evaluation").touch()
        while Path("hold").exists():
            time.sleep(0.01)
        return {}
"""


@pytest.mark.slow
def test_two_ctrl_c_during_the_final_evaluation_then_resume_end_with_the_uninterrupted_summary(
    tmp_path,
):
    (tmp_path / "held_at_the_end.py").write_text(HELD_AT_THE_END)
    path = [str(tmp_path), *filter(None, [os.environ.get("PYTHONPATH")])]
    env = {"MTLRUN_PLUGINS": "held_at_the_end", "PYTHONPATH": os.pathsep.join(path)}
    # The default VAE, whose validation draws from its posterior: evaluated again after the
    # test split, it would give other numbers.
    args = [
        *(arg for arg in TINY_ARGS if arg != "+task@tasks.class=classification"),
        "+task@tasks.class=held_classification",
        "trainer.epochs=2",
    ]
    reference = tmp_path / "reference"
    run_mtlrun(tmp_path, "train", *args, f"hydra.run.dir={reference}", env=env, check=True)
    (tmp_path / "final-evaluation").unlink()

    run_dir = tmp_path / "run"
    (tmp_path / "hold").touch()
    process = start_mtlrun(tmp_path, "train", *args, f"hydra.run.dir={run_dir}", env=env)
    deadline = time.monotonic() + 300
    while not (tmp_path / "final-evaluation").exists():
        assert time.monotonic() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.02)
    try:
        press_twice(process)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        (tmp_path / "hold").unlink()  # a run that did not stop finishes, rather than waits
    assert process.returncode == 130, stderr
    assert "SIGINT again: stopped at once" in stdout and "Traceback" not in stderr
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "interrupted"
    assert not (run_dir / "summary.json").exists()
    assert not list(run_dir.rglob("*.tmp"))

    run_mtlrun(tmp_path, "resume", str(run_dir), env=env, check=True)
    summary, expected = (
        json.loads((run / "summary.json").read_text()) for run in (run_dir, reference)
    )
    for key in ("metrics", "val_metrics", "best_epoch", "best_val_loss", "epochs", "steps"):
        assert summary[key] == expected[key], key
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    expected_records = [
        json.loads(line) for line in (reference / "metrics.jsonl").read_text().splitlines()
    ]
    assert [(r["epoch"], r["split"]) for r in records] == [
        (r["epoch"], r["split"]) for r in expected_records
    ]
