"""MNIST, FashionMNIST and CIFAR-10 through torchvision's own dataset classes."""

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor

from mtlrun.config import parse
from mtlrun.data.registry import DATASETS, RawData
from mtlrun.data.split import (
    DIGIT_TARGETS,
    DatasetInfo,
    Split,
    TargetInfo,
    digit_targets,
    images_to_float,
)
from mtlrun.errors import DataError


@dataclass
class TorchvisionDatasetConfig:
    name: str
    root: str | None = None
    download: bool = True
    val_size: int = 5000


def data_root(root: str | None) -> Path:
    """`dataset.root`, else `$MTLRUN_DATA`, else `./data`."""
    return Path(root or os.environ.get("MTLRUN_DATA") or "data").expanduser()


def load_torchvision(dataset_class: type, cfg: TorchvisionDatasetConfig) -> tuple[Tensor, ...]:
    """(train images, train labels, test images, test labels) as uint8 / int64 tensors."""
    root = data_root(cfg.root)
    arrays: list[Tensor] = []
    for train in (True, False):
        try:
            dataset = dataset_class(str(root), train=train, download=cfg.download)
        except (RuntimeError, OSError) as error:
            how = "could not be downloaded" if cfg.download else "dataset.download=false"
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DataError(
                f"{dataset_class.__name__} is not in {root.resolve()} and {how} ({reason}); "
                f"put torchvision's files there or point dataset.root (or $MTLRUN_DATA) at them"
            ) from None
        arrays.append(torch.as_tensor(dataset.data))
        arrays.append(torch.as_tensor(dataset.targets, dtype=torch.long))
    return tuple(arrays)


def load_labelled_images(
    dataset_class: type, cfg: TorchvisionDatasetConfig, label_name: str
) -> RawData:
    train_x, train_y, test_x, test_y = load_torchvision(dataset_class, cfg)
    train = Split(images_to_float(train_x), {label_name: train_y})
    test = Split(images_to_float(test_x), {label_name: test_y})
    num_classes = int(train_y.max()) + 1
    info = DatasetInfo(
        cfg.name, tuple(train.inputs.shape[1:]), {label_name: TargetInfo(num_classes)}
    )
    return RawData(info, train, test, cfg.val_size)


@DATASETS.register("mnist")
def mnist(node: DictConfig) -> RawData:
    from torchvision.datasets import MNIST

    cfg = parse(TorchvisionDatasetConfig, node, "dataset")
    train_x, train_y, test_x, test_y = load_torchvision(MNIST, cfg)
    train = Split(images_to_float(train_x), digit_targets(train_y))
    test = Split(images_to_float(test_x), digit_targets(test_y))
    return RawData(DatasetInfo(cfg.name, (1, 28, 28), DIGIT_TARGETS), train, test, cfg.val_size)


@DATASETS.register("fashion_mnist")
def fashion_mnist(node: DictConfig) -> RawData:
    from torchvision.datasets import FashionMNIST

    return load_labelled_images(
        FashionMNIST, parse(TorchvisionDatasetConfig, node, "dataset"), "class"
    )


@DATASETS.register("cifar10")
def cifar10(node: DictConfig) -> RawData:
    from torchvision.datasets import CIFAR10

    return load_labelled_images(CIFAR10, parse(TorchvisionDatasetConfig, node, "dataset"), "class")
