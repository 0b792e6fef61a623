"""Researchers' own images: a torchvision ImageFolder tree, or .npz arrays."""

import zipfile
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlrun.data.registry import RawData
from mtlrun.data.split import DatasetInfo, Split, TargetInfo, images_to_float
from mtlrun.errors import DataError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import ArraysConfig, ImageFolderConfig


def read_image_folder(folder: Path, cfg: ImageFolderConfig) -> tuple[Tensor, Tensor, list[str]]:
    from torchvision.datasets import ImageFolder
    from torchvision.transforms import v2

    if not folder.is_dir():
        raise DataError(
            f"dataset.train_dir/test_dir {folder} is not a folder; point it at "
            "an ImageFolder tree (one sub-folder of images per class)"
        )
    mode = {1: "L", 3: "RGB"}[cfg.channels]
    resize = v2.Compose([v2.Resize((cfg.image_size, cfg.image_size)), v2.PILToTensor()])
    # Decoding is per image by nature; it happens once, here, never during training.
    try:
        dataset = ImageFolder(str(folder), loader=lambda p: _open(p, mode), transform=resize)
    except FileNotFoundError as error:  # no class sub-folder, or no image in any of them
        raise DataError(
            f"{folder} holds no images in class sub-folders ({str(error).splitlines()[0]}); "
            "an ImageFolder tree is one sub-folder of images per class"
        ) from None
    images = torch.stack([image for image, _ in dataset])
    labels = torch.tensor(dataset.targets, dtype=torch.long)
    return images, labels, dataset.classes


def _open(path: str, mode: str):
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.convert(mode)
    except OSError as error:  # PIL's UnidentifiedImageError too: damaged, or not an image
        raise DataError(
            f"{path} is not an image that can be read ({str(error).splitlines()[0]}); "
            "remove it or replace it"
        ) from None


@DATASETS.register("image_folder", schema=ImageFolderConfig)
def image_folder(cfg: ImageFolderConfig) -> RawData:
    if cfg.channels not in (1, 3):
        raise DataError(f"dataset.channels={cfg.channels}: choose 1 (grayscale) or 3 (RGB)")
    images, labels, classes = read_image_folder(Path(cfg.train_dir).expanduser(), cfg)
    train = Split(images_to_float(images), {cfg.target_name: labels})
    if cfg.test_dir:
        test_images, test_labels, test_classes = read_image_folder(Path(cfg.test_dir), cfg)
        if test_classes != classes:
            raise DataError(
                f"dataset.test_dir has classes {test_classes}, train_dir {classes}; "
                "both need the same class sub-folders"
            )
        test = Split(images_to_float(test_images), {cfg.target_name: test_labels})
    else:
        if not 0 < cfg.test_size < len(train):
            raise DataError(
                f"dataset.test_size={cfg.test_size} would leave the "
                f"{'test' if cfg.test_size <= 0 else 'training'} split empty: dataset.train_dir "
                f"holds {len(train)} images; hold out between 1 and {len(train) - 1}, or give "
                "dataset.test_dir"
            )
        order = torch.randperm(len(train), generator=torch.Generator().manual_seed(cfg.seed))
        train, test = train.subset(order[cfg.test_size :]), train.subset(order[: cfg.test_size])
    info = DatasetInfo(
        cfg.name, tuple(train.inputs.shape[1:]), {cfg.target_name: TargetInfo(len(classes))}
    )
    return RawData(info, train, test, cfg.val_size)


SAVE_ARRAYS = "numpy.savez(path, images=..., labels=...) writes one"


def read_arrays(key: str, path: Path) -> tuple[Tensor, Tensor]:
    """`images` and `labels` of the .npz archive `dataset.KEY`. What is not one is named for
    what it is (numpy's own message for any other file speaks of pickled data and allow_pickle,
    which mtlrun never sets: a pickle can run code)."""
    try:
        with path.open("rb") as file:
            start = file.read(6)
    except FileNotFoundError:
        raise DataError(
            f"{path} does not exist; set dataset.train_file / dataset.test_file"
        ) from None
    except OSError as error:
        raise DataError(f"{path} cannot be read ({error.strerror})") from None
    if start == b"\x93NUMPY":
        raise DataError(
            f"{path} is a .npy file, a single array; mtlrun reads a .npz archive of 'images' "
            f"and 'labels': {SAVE_ARRAYS}"
        )
    if not start.startswith(b"PK"):
        raise DataError(f"{path} is not a .npz archive (a zip of arrays); {SAVE_ARRAYS}")
    try:
        with np.load(path) as arrays:
            images, labels = arrays["images"], arrays["labels"]
    except KeyError as missing:
        raise DataError(f"{path} has no array {missing}; it needs 'images' and 'labels'") from None
    except ValueError as error:
        if "allow_pickle" not in str(error):
            raise DataError(f"{path} is a damaged .npz archive ({error})") from None
        raise DataError(
            f"{path} holds Python objects (an object array), which mtlrun does not load since "
            "unpickling can run code; save uint8 'images' and integer 'labels'"
        ) from None
    except (OSError, EOFError, zipfile.BadZipFile) as error:  # a cut-off or corrupted zip
        raise DataError(f"{path} is a damaged .npz archive ({error})") from None
    if images.dtype != np.uint8 or images.ndim not in (3, 4):
        raise DataError(
            f"{path}: 'images' must be uint8 N×H×W×C or N×C×H×W, "
            f"not {images.dtype} with shape {images.shape}"
        )
    if images.ndim == 4 and images.shape[1] not in (1, 3) and images.shape[3] not in (1, 3):
        raise DataError(
            f"{path}: 'images' of shape {images.shape} have no channel axis of 1 (grayscale) "
            "or 3 (RGB) in N×H×W×C or N×C×H×W"
        )
    if not np.issubdtype(labels.dtype, np.integer) or labels.shape != images.shape[:1]:
        raise DataError(f"{path}: 'labels' must be N integers, not {labels.dtype} {labels.shape}")
    if not len(images):
        raise DataError(f"dataset.{key}={path} holds no examples; its split would be empty")
    return torch.from_numpy(images), torch.from_numpy(labels.astype(np.int64))


@DATASETS.register("arrays", schema=ArraysConfig)
def arrays(cfg: ArraysConfig) -> RawData:
    train_images, train_labels = read_arrays("train_file", Path(cfg.train_file).expanduser())
    test_images, test_labels = read_arrays("test_file", Path(cfg.test_file).expanduser())
    train = Split(images_to_float(train_images), {cfg.target_name: train_labels})
    test = Split(images_to_float(test_images), {cfg.target_name: test_labels})
    if train.inputs.shape[1:] != test.inputs.shape[1:]:
        raise DataError(
            f"train images are {tuple(train.inputs.shape[1:])} but test images are "
            f"{tuple(test.inputs.shape[1:])}; both files need the same image shape"
        )
    labels = torch.cat([train_labels, test_labels])
    num_classes = int(labels.max()) + 1
    info = DatasetInfo(
        cfg.name, tuple(train.inputs.shape[1:]), {cfg.target_name: TargetInfo(num_classes)}
    )
    return RawData(info, train, test, cfg.val_size)
