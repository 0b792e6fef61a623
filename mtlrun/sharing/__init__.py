"""Sharing strategies: how the tasks share parameters, registered by name."""

from mtlrun.parts import SHARING
from mtlrun.sharing.base import ModelOutput, MultiTaskModel

__all__ = ["SHARING", "ModelOutput", "MultiTaskModel"]
