"""hydra/launcher=submitit_local, the real submitit launcher on this machine: a job signalled as
SLURM pre-empts one (SIGUSR2) stops at a step boundary, writes last.pt, is requeued by
submitit, resumes in its own run folder and ends with the numbers of an uninterrupted run,
also when more signals come while it stops."""

import json
import os
import signal
import time

import pytest

from tests.helpers import run_mtlrun, start_mtlrun

ARGS = [
    "dataset=synthetic",
    "dataset.n_train=8192",  # epochs long enough (256 steps) that the signal lands inside one
    "dataset.val_size=128",
    "dataset.n_test=128",
    "device=cpu",
    "trainer.epochs=3",
    "trainer.batch_size=32",
    "trainer.progress=false",
    "trainer.deterministic=true",
    "backbone.hidden_dims=[64]",
    "tasks.reconstruction.iw_samples=4",
    "+task@tasks.class=classification",
]


@pytest.mark.slow
def test_a_preempted_submitit_job_is_requeued_and_ends_as_if_uninterrupted(tmp_path):
    reference = tmp_path / "reference"
    one_thread = {"OMP_NUM_THREADS": "1"}  # as the job's cpus_per_task=1: the same sums
    run_mtlrun(tmp_path, "train", *ARGS, f"hydra.run.dir={reference}", env=one_thread, check=True)
    expected = json.loads((reference / "summary.json").read_text())["metrics"]

    sweep = tmp_path / "sweep"
    process = start_mtlrun(
        tmp_path,
        "train",
        "-m",
        *ARGS,
        "hydra/launcher=submitit_local",
        "hydra.launcher.cpus_per_task=1",
        f"hydra.sweep.dir={sweep}",
    )
    run = sweep / "0"
    deadline = time.time() + 300
    while not (run / "checkpoints" / "last.pt").is_file() and time.time() < deadline:
        time.sleep(0.05)  # the first epoch is done: the signal below lands in the second
    job_pid = json.loads((run / "meta.json").read_text())["pid"]
    # What SLURM has submitit send, then SIGTERM, which SLURM sends too, and the pre-emption
    # signal again, while the first is being handled: neither may end the job before it has
    # stopped to be requeued.
    for signum in (signal.SIGUSR2, signal.SIGTERM, signal.SIGUSR2):
        os.kill(job_pid, signum)
    _, stderr = process.communicate(timeout=600)
    assert process.returncode == 0, stderr

    meta = json.loads((run / "meta.json").read_text())
    assert meta["status"] == "completed"
    assert meta["requeues"] == 1
    assert meta["threads"] == 1  # cpus_per_task: the job's share of the cores
    assert meta["pid"] != job_pid  # the requeued job is another process
    log = (run / "train.log").read_text()
    assert f"{signal.SIGUSR2.name}: stopped" in log and "resuming at epoch" in log
    assert json.loads((run / "summary.json").read_text())["metrics"] == expected
    (job,) = json.loads((sweep / "sweep.json").read_text())["jobs"]
    assert job["status"] == "completed" and job["requeues"] == 1
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if r["split"] == "train"] == [1, 2, 3]
