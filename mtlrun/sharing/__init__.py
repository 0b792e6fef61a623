"""Sharing strategies: how the tasks share parameters, registered by name."""

from mtlrun.sharing import hard  # noqa: F401  (they register)
from mtlrun.sharing.base import SHARING, ModelOutput, MultiTaskModel

__all__ = ["SHARING", "ModelOutput", "MultiTaskModel"]
