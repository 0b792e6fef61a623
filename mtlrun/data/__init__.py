"""Datasets held in memory as tensors: one loader per dataset, registered by name."""

import torch
from omegaconf import DictConfig

from mtlrun.data.registry import RawData
from mtlrun.data.split import (
    IGNORE_LABEL,
    Batch,
    Data,
    DatasetInfo,
    Split,
    TargetInfo,
    split_off_validation,
)
from mtlrun.errors import ConfigError, DataError
from mtlrun.parts import DATASETS

__all__ = [
    "DATASETS",
    "Batch",
    "Data",
    "DatasetInfo",
    "IGNORE_LABEL",
    "Split",
    "TargetInfo",
    "check_consistent",
    "load_data",
]


def load_data(node: DictConfig, device: torch.device, seed: int) -> Data:
    """Load `dataset.name`, carve the seeded validation split, and move it all to `device`."""
    raw: RawData = DATASETS.build(node.name, node, "dataset")
    check_consistent(raw)
    if raw.val is not None:
        train, val = raw.train, raw.val
    elif not 0 <= raw.val_size < len(raw.train):
        raise ConfigError(
            f"dataset.val_size={raw.val_size} must be at least 0 and below the "
            f"{len(raw.train)} training examples"
        )
    else:
        train, val = split_off_validation(raw.train, raw.val_size, seed)
    return Data(raw.info, train.to(device), val.to(device), raw.test.to(device), raw.augment)


def check_consistent(raw: RawData) -> None:
    """Refuse a dataset whose arrays disagree with each other or with its `DatasetInfo`, before
    the first step: an empty split, images with neither 1 nor 3 channels, a target with another
    length than the inputs, a class label outside [0, num_classes), a non-finite input."""
    info = raw.info
    where = f"dataset={info.name}"
    if info.is_image and info.input_shape[0] not in (1, 3):
        raise DataError(
            f"{where}: images have {info.input_shape[0]} channels; use 1 (grayscale) or 3 (RGB)"
        )
    splits = [("train", raw.train), ("test", raw.test)]
    if raw.val is not None:
        splits.append(("validation", raw.val))
    for split_name, split in splits:
        if len(split) == 0:
            raise DataError(f"{where}: the {split_name} split is empty; it needs examples")
        if tuple(split.inputs.shape[1:]) != info.input_shape:
            raise DataError(
                f"{where}: {split_name} inputs are {tuple(split.inputs.shape[1:])}, "
                f"not {info.input_shape} like the dataset's; every example needs one shape"
            )
        if not torch.isfinite(split.inputs).all():
            raise DataError(f"{where}: the {split_name} inputs hold NaN or infinite values")
        for target, target_info in info.targets.items():
            check_target(where, split_name, split, target, target_info)


def check_target(where: str, split_name: str, split: Split, name: str, info: TargetInfo) -> None:
    values = split.targets.get(name)
    if values is None or values.shape[0] != len(split):
        length = "none" if values is None else values.shape[0]
        raise DataError(
            f"{where}: the {split_name} split has {len(split)} inputs but {length} values of "
            f"target {name!r}; they need one each"
        )
    if info.num_classes is None:
        return
    dims = 3 if info.per_pixel else 1
    if values.is_floating_point() or values.dim() != dims:
        what = "per pixel (N×H×W)" if info.per_pixel else "per example"
        raise DataError(
            f"{where}: {split_name} labels {name!r} must be one integer {what}, "
            f"not {values.dtype} of shape {tuple(values.shape)}"
        )
    labelled = values[values != IGNORE_LABEL] if info.per_pixel else values
    if labelled.numel() == 0:
        return
    low, high = int(labelled.min()), int(labelled.max())
    if low < 0 or high >= info.num_classes:
        raise DataError(
            f"{where}: {split_name} labels {name!r} run from {low} to {high}; they must lie in "
            f"[0, {info.num_classes}), one per class"
        )
