"""Datasets held in memory as tensors: one loader per dataset, registered by name."""

import torch
from omegaconf import DictConfig

from mtlrun.data import (  # noqa: F401  (they register)
    files,
    multimnist,
    synthetic,
    synthetic_regression,
    torchvision_sets,
)
from mtlrun.data.registry import DATASETS, RawData
from mtlrun.data.split import Batch, Data, DatasetInfo, Split, TargetInfo, split_off_validation
from mtlrun.errors import ConfigError

__all__ = ["DATASETS", "Batch", "Data", "DatasetInfo", "Split", "TargetInfo", "load_data"]


def load_data(node: DictConfig, device: torch.device, seed: int) -> Data:
    """Load `dataset.name`, carve the seeded validation split, and move it all to `device`."""
    raw: RawData = DATASETS.build(node.name, node, "dataset")
    if not 0 <= raw.val_size < len(raw.train):
        raise ConfigError(
            f"dataset.val_size={raw.val_size} must be at least 0 and below the "
            f"{len(raw.train)} training examples"
        )
    train, val = split_off_validation(raw.train, raw.val_size, seed)
    return Data(raw.info, train.to(device), val.to(device), raw.test.to(device))
