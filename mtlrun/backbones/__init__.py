"""Backbones: encoders (and decoders for their codes), registered by name."""

from mtlrun.backbones.base import Backbone, Encoding
from mtlrun.parts import BACKBONES

__all__ = ["BACKBONES", "Backbone", "Encoding"]
