"""`mtlrun train [overrides]`: Hydra's own main, so -m, --cfg, --help, launchers and sweepers
work. In a sweep, a job that fails is recorded and the sweep goes on; `mtlrun.sweep` then writes
sweep.json and makes the exit status non-zero."""

import os
import sys
import traceback
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from mtlrun import plugins
from mtlrun.config import config_dir
from mtlrun.distributed import leave, torchrun_ranks
from mtlrun.errors import ConfigError, UserError
from mtlrun.loop import preemption_signal, train
from mtlrun.runfolder import RunFolder, existing_run_message
from mtlrun.tasks import TASKS


def check_optimized_metric(cfg: DictConfig, sweeper_direction: str | None = None) -> None:
    """`optimized_metric` (what a hyperparameter sweeper minimises or maximises) must be a
    validation metric this config reports: selecting on the test split would make the test
    numbers of the chosen run optimistic. The sweeper's direction must agree with the metric's;
    checked before training, so a mistake costs no trials."""
    name = cfg.get("optimized_metric")
    if name is None:
        return
    if str(name).startswith("test/"):
        raise ConfigError(
            f"optimized_metric={name} is a test metric; selecting on the test split biases the "
            f"test numbers, so optimise the validation metric {'val/' + name[5:]} instead"
        )
    if not cfg.dataset.get("val_size", 1):
        raise ConfigError(
            f"optimized_metric={name} needs a validation split, but dataset.val_size=0; "
            "set dataset.val_size, e.g. 5000"
        )
    directions = {"val/loss": "min"} | {
        f"val/{task}/{metric}": direction
        for task, node in cfg.tasks.items()
        for metric, direction in TASKS.get(node.type).directions.items()
    }
    if name not in directions:
        raise ConfigError(
            f"optimized_metric={name!r} is not a validation metric of this config; "
            f"choose one of: {', '.join(directions)}"
        )
    wanted = {"min": "minimize", "max": "maximize"}[directions[name]]
    if sweeper_direction is not None and sweeper_direction != wanted:
        better = "lower" if wanted == "minimize" else "higher"
        raise ConfigError(
            f"optimized_metric={name} is better when {better}, but hydra.sweeper.direction="
            f"{sweeper_direction}; set hydra.sweeper.direction={wanted}"
        )


def objective(cfg: DictConfig, summary: dict[str, Any]) -> float | None:
    """The value a sweeper such as Optuna optimises: `optimized_metric` in the final model's
    last validation evaluation."""
    name = cfg.get("optimized_metric")
    if name is None:
        return None
    metrics = summary["val_metrics"]
    if name not in metrics:
        raise UserError(f"optimized_metric={name!r} was not computed; found: {', '.join(metrics)}")
    return metrics[name]


def sweeper_direction(hydra_cfg: DictConfig) -> str | None:
    """Optuna's `direction` (an enum in the job's config): "minimize" or "maximize"; None for
    other sweepers and for multi-objective searches."""
    direction = OmegaConf.select(hydra_cfg, "sweeper.direction")
    direction = getattr(direction, "name", direction)
    return direction if isinstance(direction, str) else None


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
        torch.set_num_threads(int(cpus))  # the job's share of the node, not all its cores
    ranks, leader = None, True
    try:
        plugins.load_for_config(cfg.plugins)  # again: a launcher's job may be a new process
        ranks = torchrun_ranks(cfg)
        if ranks is not None:  # the other ranks' Hydra folders are temporary (mtlrun.cli)
            run_dir, leader = Path(ranks.broadcast(str(run_dir))), ranks.leader
        requeued = leader and is_requeued(run_dir)
        existing = leader and existing_run_message(run_dir)
        if existing and not requeued:
            raise UserError(existing)
        check_optimized_metric(cfg, sweeper_direction(hydra_cfg))
        value = objective(cfg, train(cfg, run_dir, resume=requeued))
    except KeyboardInterrupt as interrupt:
        preemption = preemption_signal()
        if preemption is not None and interrupt.args[:1] == (preemption.name,):
            # last.pt is written: hand the signal on to submitit, which requeues this job.
            RunFolder(run_dir).update_meta(preempted=True)
            os.kill(os.getpid(), preemption)
        print(run_dir)
        sys.exit(130)  # stops a sweep too: Ctrl-C means the user wants to stop
    except UserError as error:
        if leader:  # the other ranks of a torchrun run met the same error
            print(f"mtlrun: error: {job}{error}", file=sys.stderr)
        if not sweeping:
            sys.exit(2)
        RunFolder(run_dir).refused(str(error))
        return None  # the job counts as failed in sweep.json; the sweep goes on
    except Exception as error:
        if not sweeping:
            raise
        # A bug, not a user error: keep its traceback with the run, one line for the terminal.
        (run_dir / "error.txt").write_text(traceback.format_exc())
        reason = str(error).splitlines()[0] if str(error) else ""
        print(
            f"mtlrun: error: {job}{type(error).__name__}: {reason}; "
            f"traceback in {run_dir / 'error.txt'}",
            file=sys.stderr,
        )
        return None
    finally:
        if ranks is not None:
            leave(ranks)
    if leader:
        print(run_dir)
    return value
