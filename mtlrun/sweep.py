"""The end of a sweep (`mtlrun train -m`): sweep.json lists every job, and the exit status says
whether any job failed. A Hydra callback, so it works the same for every launcher and sweeper."""

import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from mtlrun.errors import UserError
from mtlrun.runfolder import RunFolder, original_command, run_status, write_json

EXIT_JOBS_FAILED = 1


def sweep_jobs(sweep_dir: Path) -> list[dict[str, Any]]:
    """Every job Hydra started under `sweep_dir` (found by its .hydra/hydra.yaml, so a custom
    `hydra.sweep.subdir` works too), in job order: overrides, status and run folder. A job that
    stopped before its run folder's meta.json was written counts as failed."""
    jobs = []
    for hydra_yaml in sweep_dir.glob("**/.hydra/hydra.yaml"):
        run = RunFolder(hydra_yaml.parent.parent)
        try:
            meta = run.read_meta()
        except UserError as error:
            meta = {"status": "failed", "error": str(error)}
        job = {
            "job": int(OmegaConf.load(hydra_yaml).hydra.job.num),
            "overrides": run.overrides(),
            "status": run_status(meta) if meta else "failed",
            "run_dir": run.path.relative_to(sweep_dir).as_posix(),
        }
        if meta.get("requeues"):  # pre-empted, then resumed by submitit's requeued job
            job["requeues"] = meta["requeues"]
        if job["status"] == "failed":
            job["error"] = meta.get("error", "stopped before training started")
        jobs.append(job)
    return sorted(jobs, key=lambda job: job["job"])


class SweepSummary(Callback):
    """Writes <sweep dir>/sweep.json once all jobs have returned, then exits non-zero when a job
    failed: jobs catch their own errors so that the sweep goes on, which leaves Hydra itself
    unaware of the failure."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        # The sweeper resolved `${now:...}` in this same config object, and Hydra caches it:
        # this is the folder the jobs ran in.
        sweep_dir = Path(config.hydra.sweep.dir).absolute()
        jobs = sweep_jobs(sweep_dir)
        write_json(sweep_dir / "sweep.json", {"command": original_command(), "jobs": jobs})
        failed = [job for job in jobs if job["status"] != "completed"]
        if failed:
            numbers = ", ".join(f"#{job['job']}" for job in failed)
            print(
                f"mtlrun: error: {len(failed)} of {len(jobs)} jobs failed ({numbers}); "
                f"see {sweep_dir / 'sweep.json'}",
                file=sys.stderr,
            )
        print(sweep_dir)
        if failed:
            sys.exit(EXIT_JOBS_FAILED)
