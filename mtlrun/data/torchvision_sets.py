"""MNIST, FashionMNIST and CIFAR-10 through torchvision's own dataset classes."""

import os
from pathlib import Path

import torch
from torch import Tensor

from mtlrun.data.registry import RawData
from mtlrun.data.split import (
    DIGIT_TARGETS,
    DatasetInfo,
    Split,
    TargetInfo,
    digit_targets,
    images_to_float,
)
from mtlrun.errors import DataError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import TorchvisionDatasetConfig

# The usual per-channel pixel mean and standard deviation of each training set (torchvision's
# examples; Sener & Koltun 2018 standardise MultiMNIST with MNIST's).
PIXEL_STATISTICS = {
    "MNIST": ((0.1307,), (0.3081,)),
    "FashionMNIST": ((0.2860,), (0.3530,)),
    "CIFAR10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


def normalization(statistics: str, cfg: TorchvisionDatasetConfig):
    """The `PIXEL_STATISTICS` entry the encoders standardise with, if `dataset.normalize`."""
    return PIXEL_STATISTICS[statistics] if cfg.normalize else None


def data_root(root: str | None) -> Path:
    """`dataset.root`, else `$MTLRUN_DATA`, else `./data`."""
    return Path(root or os.environ.get("MTLRUN_DATA") or "data").expanduser()


def damaged_file(dataset_class: type, root: Path) -> Path | None:
    """The first of the dataset's files in `root` that is there but is not what torchvision
    reads: a CIFAR-10 batch whose checksum differs, an MNIST-family file that does not parse as
    the IDX array it names (idx3: images, idx1: labels). None when none is."""
    from torchvision.datasets.utils import check_integrity

    if hasattr(dataset_class, "train_list"):  # CIFAR-10's pickled batches, with checksums
        folder = root / dataset_class.base_folder
        for name, md5 in dataset_class.train_list + dataset_class.test_list:
            if (folder / name).is_file() and not check_integrity(str(folder / name), md5):
                return folder / name
        return None
    from torchvision.datasets.mnist import read_sn3_pascalvincent_tensor

    folder = root / dataset_class.__name__ / "raw"
    for url, _ in getattr(dataset_class, "resources", []):
        path = folder / Path(url).stem  # the unpacked file: its name without .gz
        if not path.is_file():
            continue
        try:
            dims = read_sn3_pascalvincent_tensor(str(path), strict=False).dim()
        except Exception:
            return path
        if dims != (3 if "idx3" in path.name else 1):
            return path
    return None


def load_torchvision(dataset_class: type, cfg: TorchvisionDatasetConfig) -> tuple[Tensor, ...]:
    """(train images, train labels, test images, test labels) as uint8 / int64 tensors."""
    root = data_root(cfg.root)
    arrays: list[Tensor] = []
    for train in (True, False):
        try:
            dataset = dataset_class(str(root), train=train, download=cfg.download)
        except Exception as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            damaged = damaged_file(dataset_class, root)
            if damaged is not None:
                raise DataError(
                    f"{damaged} is damaged, or is not {dataset_class.__name__}'s file "
                    f"({reason}); replace it with torchvision's"
                ) from None
            if not isinstance(error, (RuntimeError, OSError)):
                raise
            how = "could not be downloaded" if cfg.download else "dataset.download=false"
            raise DataError(
                f"{dataset_class.__name__} is not in {root.resolve()} and {how} ({reason}); "
                f"put torchvision's files there or point dataset.root (or $MTLRUN_DATA) at them"
            ) from None
        arrays.append(torch.as_tensor(dataset.data))
        arrays.append(torch.as_tensor(dataset.targets, dtype=torch.long))
    return tuple(arrays)


def load_labelled_images(
    dataset_class: type, cfg: TorchvisionDatasetConfig, label_name: str, statistics: str
) -> RawData:
    train_x, train_y, test_x, test_y = load_torchvision(dataset_class, cfg)
    train = Split(images_to_float(train_x), {label_name: train_y})
    test = Split(images_to_float(test_x), {label_name: test_y})
    num_classes = int(train_y.max()) + 1
    info = DatasetInfo(
        cfg.name,
        tuple(train.inputs.shape[1:]),
        {label_name: TargetInfo(num_classes)},
        normalization(statistics, cfg),
    )
    return RawData(info, train, test, cfg.val_size)


@DATASETS.register("mnist", schema=TorchvisionDatasetConfig)
def mnist(cfg: TorchvisionDatasetConfig) -> RawData:
    """MNIST: 60k training and 10k test images of handwritten digits, 28×28 grayscale; labels
    digit, parity and magnitude (≥ 5)."""
    from torchvision.datasets import MNIST

    train_x, train_y, test_x, test_y = load_torchvision(MNIST, cfg)
    train = Split(images_to_float(train_x), digit_targets(train_y))
    test = Split(images_to_float(test_x), digit_targets(test_y))
    info = DatasetInfo(cfg.name, (1, 28, 28), DIGIT_TARGETS, normalization("MNIST", cfg))
    return RawData(info, train, test, cfg.val_size)


@DATASETS.register("fashion_mnist", schema=TorchvisionDatasetConfig)
def fashion_mnist(cfg: TorchvisionDatasetConfig) -> RawData:
    """FashionMNIST: 60k training and 10k test images of clothing, 28×28 grayscale; label
    class (10 classes)."""
    from torchvision.datasets import FashionMNIST

    return load_labelled_images(FashionMNIST, cfg, "class", "FashionMNIST")


@DATASETS.register("cifar10", schema=TorchvisionDatasetConfig)
def cifar10(cfg: TorchvisionDatasetConfig) -> RawData:
    """CIFAR-10: 50k training and 10k test images, 32×32 RGB; label class (10 classes)."""
    from torchvision.datasets import CIFAR10

    return load_labelled_images(CIFAR10, cfg, "class", "CIFAR10")
