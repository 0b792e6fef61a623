"""Everything mtlrun knows of `torchrun --nproc-per-node N -m mtlrun train ...`: its environment
variables, the command line each rank runs, and the process group the ranks join. Under
torchrun every rank runs the whole command; rank 0's Hydra makes the run folder, the other
ranks' Hydra writes into a temporary folder (removed at the end), and training gets rank 0's
folder by a broadcast. Imports torch only when a rank joins."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from mtlrun.errors import ConfigError, UserError

if TYPE_CHECKING:
    from mtlrun.distributed import Ranks

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


def world_size() -> int:
    """The number of ranks torchrun started (1 outside torchrun); a value that is no positive
    whole number is a one-line error."""
    text = os.environ.get("WORLD_SIZE", "1")
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"WORLD_SIZE={text!r} is not a number of processes; start with torchrun")
    return int(text)


def rank_index(name: str) -> int:
    text = os.environ.get(name, "0")
    if not text.strip().isdigit():
        raise UserError(f"{name}={text!r} is not a rank number; start mtlrun with torchrun")
    return int(text)


@contextmanager
def rank_arguments(command: str, arguments: list[str]) -> Iterator[list[str]]:
    """The arguments, as one rank of a torchrun run runs them: one run, whose folder rank 0's
    Hydra makes; the other ranks' Hydra writes into a temporary folder, removed at the end."""
    if world_size() == 1:
        yield arguments
        return
    if command != "train":
        raise UserError(
            f"under torchrun only `mtlrun train` runs; run `mtlrun {command}` without torchrun "
            "(`mtlrun resume` starts the run's trainer.devices processes itself)"
        )
    if any(arg in ("-m", "--multirun") for arg in arguments):
        raise UserError(
            "a sweep (-m) cannot run under torchrun; sweep runs that each use several "
            "processes with `mtlrun train -m ... trainer.devices=N`"
        )
    rank = rank_index("RANK")
    if rank == 0:
        yield arguments
        return
    scratch = tempfile.mkdtemp(prefix=f"mtlrun-rank{rank}-")
    try:
        yield [*arguments, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


_joined: "Ranks | None" = None


def joined_ranks(cfg: DictConfig) -> "Ranks | None":
    """The ranks torchrun started this process among, the process group joined once; None
    outside torchrun or with one process."""
    global _joined
    if _joined is None and world_size() > 1:
        from mtlrun.distributed import join

        missing = [name for name in VARIABLES if name not in os.environ]
        if missing:
            raise UserError(
                f"WORLD_SIZE is set but {', '.join(missing)} not; start mtlrun with torchrun, "
                "or use trainer.devices=N"
            )
        size = world_size()
        devices = int(cfg.trainer.get("devices", 1))
        if devices not in (1, size):
            raise ConfigError(
                f"trainer.devices={devices} but torchrun started {size} processes; "
                f"leave trainer.devices out or set it to {size}"
            )
        _joined = join(cfg, rank_index("RANK"), size, rank_index("LOCAL_RANK"), "env://")
    return _joined
