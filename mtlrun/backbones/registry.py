from collections.abc import Callable

from omegaconf import DictConfig

from mtlrun.backbones.base import Backbone
from mtlrun.data import DatasetInfo
from mtlrun.registry import Registry

BACKBONES: Registry[Callable[[DictConfig, DatasetInfo], Backbone]] = Registry("backbone")
