from collections.abc import Callable

from mtlrun.backbones.base import Backbone
from mtlrun.registry import Registry

BACKBONES: Registry[Callable[..., Backbone]] = Registry("backbone", group="backbone")
"""Backbones, built as `builder(config, dataset_info)`."""
