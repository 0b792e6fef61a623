"""Sharing strategies: how the tasks share parameters, registered by name."""

from mtlrun.sharing import (  # noqa: F401  (they register)
    concat,
    cross_stitch,
    grouped,
    hard,
    mmoe,
    mtan,
    single_task,
    soft,
    two_stage,
)
from mtlrun.sharing.base import SHARING, ModelOutput, MultiTaskModel

__all__ = ["SHARING", "ModelOutput", "MultiTaskModel"]
