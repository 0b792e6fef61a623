"""Backbones: encoders (and decoders for their codes), registered by name."""

from mtlrun.backbones import conv, dense  # noqa: F401  (they register)
from mtlrun.backbones.base import Backbone, Encoding
from mtlrun.backbones.registry import BACKBONES

__all__ = ["BACKBONES", "Backbone", "Encoding"]
