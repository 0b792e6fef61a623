"""The dataset registry: `dataset.name` to a loader returning the train and test splits."""

from collections.abc import Callable
from dataclasses import dataclass

from mtlrun.data.split import DatasetInfo, Split
from mtlrun.registry import Registry


@dataclass
class RawData:
    """What a loader returns, before the validation split is carved out and moved to a device."""

    info: DatasetInfo
    train: Split
    test: Split
    val_size: int


DATASETS: Registry[Callable[..., RawData]] = Registry("dataset", group="dataset")
"""Datasets, built as `builder(config)`."""
