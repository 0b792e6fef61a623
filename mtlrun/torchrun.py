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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from omegaconf import DictConfig

from mtlrun.errors import ConfigError, UserError
from mtlrun.runfolder import process_alive

if TYPE_CHECKING:
    from mtlrun.distributed import Ranks

VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")
START_WITH = "start mtlrun with torchrun, or use trainer.devices=N"


def world_size() -> int:
    """The number of ranks torchrun started (1 outside torchrun); a value that is no positive
    whole number is a one-line error."""
    text = os.environ.get("WORLD_SIZE", "1")
    if not text.strip().isdigit() or int(text) < 1:
        raise UserError(f"WORLD_SIZE={text!r} is not a number of processes; {START_WITH}")
    return int(text)


@dataclass(frozen=True)
class Place:
    """This process's place among the ranks torchrun started, from its environment."""

    rank: int
    size: int
    local_rank: int


def place() -> Place:
    """This process's `Place`, every variable torchrun sets checked: each there, the ranks
    whole numbers below their counts, the port one a socket can have. Each mistake is one
    line naming the variable."""
    missing = [name for name in VARIABLES if name not in os.environ]
    if missing:
        raise UserError(f"WORLD_SIZE is set but {', '.join(missing)} not; {START_WITH}")
    size = world_size()
    local_size = os.environ.get("LOCAL_WORLD_SIZE", str(size))
    rank = index("RANK", size, "WORLD_SIZE")
    local_rank = index("LOCAL_RANK", whole("LOCAL_WORLD_SIZE", local_size), "LOCAL_WORLD_SIZE")
    port = os.environ["MASTER_PORT"]
    if not port.strip().isdigit() or not 0 < int(port) < 2**16:
        raise UserError(f"MASTER_PORT={port!r} is not a port (1 to 65535); {START_WITH}")
    if not os.environ["MASTER_ADDR"].strip():
        raise UserError(f"MASTER_ADDR is empty; {START_WITH}")
    return Place(rank, size, local_rank)


def whole(name: str, text: str) -> int:
    if not text.strip().isdigit():
        raise UserError(f"{name}={text!r} is not a whole number; {START_WITH}")
    return int(text)


def index(name: str, count: int, count_name: str) -> int:
    """The rank in $`name`, one of the `count` ranks $`count_name` says there are."""
    text = os.environ[name]
    if not text.strip().isdigit() or int(text) >= count:
        raise UserError(
            f"{name}={text!r} is not a rank of {count_name}={count} (0 to {count - 1}); "
            f"{START_WITH}"
        )
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
    rank = place().rank
    remove_orphan_scratch()
    if rank == 0:
        try:
            yield arguments
        finally:
            remove_orphan_scratch()  # the folder of a rank killed in this run
        return
    scratch = tempfile.mkdtemp(prefix=f"{SCRATCH}{rank}-{os.getpid()}-")
    try:
        yield [*arguments, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


SCRATCH = "mtlrun-rank"  # mtlrun-rank<RANK>-<PID>-<random>: a rank's Hydra folder


def remove_orphan_scratch() -> None:
    """Remove the temporary Hydra folders of ranks on this host that were killed before they
    could remove their own."""
    for folder in Path(tempfile.gettempdir()).glob(f"{SCRATCH}*-*-*"):
        pid = folder.name.split("-")[2]
        if pid.isdigit() and not process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


_joined: "Ranks | None" = None
JOIN_SECONDS = 120.0  # how long the ranks wait for each other to start


def joined_ranks(cfg: DictConfig) -> "Ranks | None":
    """The ranks torchrun started this process among, the process group joined once; None
    outside torchrun or with one process."""
    global _joined
    if _joined is None and world_size() > 1:
        from mtlrun.distributed import join_env

        where = place()
        devices = int(cfg.trainer.get("devices", 1))
        if devices not in (1, where.size):
            raise ConfigError(
                f"trainer.devices={devices} but torchrun started {where.size} processes; "
                f"leave trainer.devices out or set it to {where.size}"
            )
        _joined = join_env(cfg, where.rank, where.size, where.local_rank, JOIN_SECONDS)
    return _joined


def rank_zero_folder(ranks: "Ranks", run_dir: Path) -> Path:
    """Rank 0's run folder, on every rank: the others' Hydra wrote into a temporary one."""
    return Path(ranks.broadcast(str(run_dir)))
