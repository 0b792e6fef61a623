"""`mtlrun train [overrides]`: Hydra's own main, so -m, --cfg, --help, launchers and sweepers
work. In a sweep, a job that fails is recorded and the sweep goes on; `mtlrun.sweep` then writes
sweep.json and makes the exit status non-zero."""

import os
import sys
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

import mtlrun.plugins as plugins
from mtlrun.compose import (
    drop_deleted_task_settings,
    is_basic_sweep,
    sweeper_direction,
    validate,
)
from mtlrun.config import config_dir
from mtlrun.errors import LostRank, UserError, listed
from mtlrun.runfolder import RunFolder, existing_run_message
from mtlrun.signals import preemption_signal
from mtlrun.torchrun import joined_ranks, rank_zero_folder


def objective(cfg: DictConfig, summary: dict[str, Any]) -> float | None:
    """The value a sweeper such as Optuna optimises: `optimized_metric` in the final model's
    last validation evaluation."""
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    metrics = summary["val_metrics"]
    if name not in metrics:
        found = listed(list(metrics), "see the run's metrics.jsonl")
        raise UserError(f"optimized_metric={name!r} was not computed; found: {found}")
    return metrics[name]


def is_requeued(run_dir: Path) -> bool:
    """Whether this job is a submitit job requeued after its pre-emption in `run_dir` (the
    folder survives the requeue): it resumes from last.pt, and meta.json counts it."""
    run = RunFolder(run_dir)
    meta = run.read_meta()
    if preemption_signal() is None or not meta.get("preempted"):
        return False
    if not run.checkpoint("last").is_file():
        return False
    run.update_meta(preempted=False, requeues=int(meta.get("requeues", 0)) + 1)
    return True


@hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
def main(cfg: DictConfig) -> float | None:
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    job = f"job #{hydra_cfg.job.num} ({run_dir}): " if sweeping else ""
    cpus = OmegaConf.select(hydra_cfg, "launcher.cpus_per_task")  # submitit's launchers
    if cpus:
        import torch

        torch.set_num_threads(int(cpus))  # the job's share of the node, not all its cores
    ranks, leader = None, True
    try:
        plugins.load_for_config(cfg.plugins)  # again: a launcher's job may be a new process
        # A sweep's job is composed again by its launcher, after `Preflight` saw it.
        drop_deleted_task_settings(cfg, list(hydra_cfg.overrides.task))
        if sweeping and not is_basic_sweep(hydra_cfg):
            # A search (Optuna) draws this job's values: the job checks them itself.
            validate(cfg, sweeper_direction(hydra_cfg))
        ranks = joined_ranks(cfg)
        if ranks is not None:
            run_dir, leader = rank_zero_folder(ranks, run_dir), ranks.leader
        requeued = leader and is_requeued(run_dir)
        existing = leader and existing_run_message(run_dir)
        if existing and not requeued:
            raise UserError(existing)
        from mtlrun.lifecycle import train  # torch: not for `--cfg job` or `--help`

        value = objective(cfg, train(cfg, run_dir, resume=requeued, ranks=ranks))
    except KeyboardInterrupt as interrupt:
        if leader and not RunFolder(run_dir).meta_path.exists():
            RunFolder(run_dir).remove_if_unstarted()  # stopped before it started
            raise
        preemption = preemption_signal()
        if preemption is not None and interrupt.args[:1] == (preemption.name,):
            # last.pt is written, meta.json says pre-empted: hand the signal on to submitit,
            # which requeues this job.
            os.kill(os.getpid(), preemption)
        print(run_dir)
        sys.exit(130)  # stops a sweep too: Ctrl-C means the user wants to stop
    except UserError as error:
        # The other ranks of a torchrun run met the same error, but only the survivors know
        # that a rank is gone.
        if leader or isinstance(error, LostRank):
            print(f"mtlrun: error: {job}{error}", file=sys.stderr)
        if not sweeping:
            if leader:
                RunFolder(run_dir).remove_if_unstarted()
            sys.exit(2)
        RunFolder(run_dir).record_refusal(str(error))
        return None  # the job counts as failed in sweep.json; the sweep goes on
    except Exception as error:
        if not sweeping:
            raise
        # A bug, not a user error: keep its traceback with the run, one line for the terminal.
        path = RunFolder(run_dir).write_traceback(error)
        reason = str(error).splitlines()[0] if str(error) else ""
        print(
            f"mtlrun: error: {job}{type(error).__name__}: {reason}; traceback in {path}",
            file=sys.stderr,
        )
        return None
    finally:
        if ranks is not None:
            from mtlrun.distributed import leave

            leave(ranks)
    if leader:
        print(run_dir)
    return value
