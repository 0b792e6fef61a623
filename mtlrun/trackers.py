"""The trackers' destinations a saved run names (an MLflow server or store, W&B online) are used
again only with the user's consent, as its plug-ins are imported: `resume` and `reproduce`
contact a destination on the network, or write a path outside the run's output tree, only when
the user names it again (`logger.mlflow.tracking_uri=URI`, for `reproduce`) or passes
`--trackers`. Otherwise one line says what was left out, and the run goes on without that
logger (its other loggers, metrics.jsonl and checkpoints as ever)."""

import sys
from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from mtlrun.parts import LOGGERS
from mtlrun.runfolder import output_root
from mtlrun.schemas.logger import Destination

OPTION = "--trackers"


def split_option(args: list[str]) -> tuple[list[str], bool]:
    """`--trackers` taken out of a command's arguments, and whether it was there."""
    rest = [arg for arg in args if arg != OPTION]
    return rest, len(rest) < len(args)


def inside(destination: Destination, root: Path) -> bool:
    """Whether a destination is a path in the output tree `root` (relative paths lie there)."""
    if destination.path is None:
        return False
    return (root / destination.path).resolve().is_relative_to(root.resolve())


def leave_out_foreign(
    cfg: DictConfig, run_dir: Path, allowed: bool, named: Sequence[str] | None = None
) -> None:
    """Remove from `cfg.logger` every logger whose destination lies on the network or outside
    the output tree of `run_dir` (the run that will log), unless `allowed` (`--trackers`) or
    the user's overrides set its key again (`named`: their keys; None for a command that takes
    no such override); one line on stderr for each one left out."""
    loggers = cfg.get("logger")
    if allowed or not isinstance(loggers, DictConfig):
        return
    root = output_root(run_dir)
    for name in [str(name) for name in loggers]:
        destination = LOGGERS.config(name, loggers[name], f"logger.{name}").destination()
        if destination is None or inside(destination, root):
            continue
        key = f"logger.{name}.{destination.option.split('=', 1)[0]}"
        if named is not None and key in named:
            continue
        where = (
            "was not contacted: a saved run's network destination is used only when you allow it"
            if destination.path is None
            else f"is outside the output tree {root} and was not written"
        )
        how = f"name it again with logger.{name}.{destination.option} or pass {OPTION}"
        print(
            f"mtlrun: warning: logger.{name} left out: {destination.address} {where}; "
            f"{how if named is not None else f'pass {OPTION} to use it'}",
            file=sys.stderr,
        )
        del loggers[name]
