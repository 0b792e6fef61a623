"""NYUv2 and Cityscapes in the `.npy` layout of MTAN (Liu, Johns & Davison, CVPR 2019) and
LibMTL: `root/{train,val}/<kind>/<i>.npy`, one file per image and kind, i = 0 .. n-1:

    image   float H×W×3 in [0, 1]
    label   H×W class indices as floats or integers, -1 on unlabelled pixels
            (NYUv2: 13 classes; Cityscapes: 7, in MTAN's `label_7` or LibMTL's `label`)
    depth   float H×W×1, 0 on pixels without a measurement
    normal  float H×W×3 unit vectors, 0 where unknown (NYUv2 only)

NYUv2 is 795 / 654 images of 288×384, Cityscapes 2975 / 500 of 128×256. Every file is read
with `allow_pickle=False` (a pickled array could run code) and checked against the first
image's size; a missing, foreign or damaged one is named in one line. The arrays are held in
memory as tensors: images N×3×H×W float32, labels N×H×W int64, depth N×1×H×W, normals N×3×H×W.
"""

from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from mtlrun.data.augment import random_scale_crop
from mtlrun.data.registry import RawData
from mtlrun.data.split import IGNORE_LABEL, DatasetInfo, Split, TargetInfo
from mtlrun.data.torchvision_sets import data_root
from mtlrun.errors import DataError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import DenseScenesConfig

NYUV2_CLASSES = 13
CITYSCAPES_CLASSES = 7


def read_array(path: Path) -> np.ndarray:
    """One `.npy` array, never unpickled; a missing or unreadable file is a DataError naming
    it."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(
            f"{path} is missing; each of image/, label/, depth/ (and normal/) needs "
            "0.npy .. <n-1>.npy, one per image"
        ) from None
    except (OSError, ValueError, EOFError) as error:  # cut off, foreign bytes, pickled objects
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(f"{path} is not a readable .npy array ({reason}); replace it") from None
    if not isinstance(array, np.ndarray):  # an .npz archive under a .npy name
        raise DataError(f"{path} is not a single .npy array; replace it")
    return array


def expect(path: Path, array: np.ndarray, shape: tuple[int, ...], what: str) -> None:
    """Refuse an array of another shape, or not of numbers, naming the file."""
    if array.shape != shape or not (
        np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)
    ):
        raise DataError(
            f"{path} is {array.dtype} of shape {array.shape}, not numbers of shape {shape} "
            f"({what}); it does not belong to this dataset's layout"
        )


def count_images(folder: Path) -> int:
    if not folder.is_dir():
        raise DataError(
            f"{folder} is not a folder; the dataset's root needs train/ and val/, each with "
            "image/, label/ and depth/ (NYUv2: normal/ too) of <i>.npy files (README: Benchmarks "
            "of the field)"
        )
    return len(list(folder.glob("*.npy")))


def read_split(folder: Path, kinds: dict[str, str], num_classes: int) -> Split:
    """The arrays of one split folder (train/ or val/); `kinds` maps each target to its
    sub-folder."""
    n = count_images(folder / "image")
    if n == 0:
        raise DataError(f"{folder / 'image'} holds no .npy images")
    for kind in kinds.values():
        found = count_images(folder / kind)
        if found != n:
            raise DataError(
                f"{folder / kind} holds {found} .npy files but {folder / 'image'} holds {n}; "
                "every image needs one of each"
            )
    first = read_array(folder / "image" / "0.npy")
    if first.ndim != 3 or first.shape[2] != 3:
        expect(folder / "image" / "0.npy", first, (*first.shape[:2], 3), "an H×W×3 image")
    height, width = first.shape[:2]
    images = torch.empty((n, 3, height, width))
    targets = {
        "segmentation": torch.empty((n, height, width), dtype=torch.long),
        "depth": torch.empty((n, 1, height, width)),
    }
    if "normal" in kinds:
        targets["normal"] = torch.empty((n, 3, height, width))
    for i in range(n):
        path = folder / "image" / f"{i}.npy"
        image = first if i == 0 else read_array(path)
        expect(path, image, (height, width, 3), "an H×W×3 image")
        images[i] = torch.from_numpy(np.moveaxis(image, -1, 0).astype(np.float32))
        path = folder / kinds["segmentation"] / f"{i}.npy"
        targets["segmentation"][i] = class_map(path, read_array(path), (height, width), num_classes)
        path = folder / kinds["depth"] / f"{i}.npy"
        depth = read_array(path)
        expect(path, depth, (height, width, 1), "an H×W×1 depth map")
        targets["depth"][i] = torch.from_numpy(np.moveaxis(depth, -1, 0).astype(np.float32))
        if "normal" in kinds:
            path = folder / kinds["normal"] / f"{i}.npy"
            normal = read_array(path)
            expect(path, normal, (height, width, 3), "an H×W×3 normal map")
            targets["normal"][i] = torch.from_numpy(np.moveaxis(normal, -1, 0).astype(np.float32))
    for name, values in targets.items():
        if values.is_floating_point() and not torch.isfinite(values).all():
            raise DataError(f"{folder}: the {name} maps hold NaN or infinite values")
    return Split(images, targets)


def class_map(path: Path, array: np.ndarray, size: tuple[int, int], num_classes: int) -> Tensor:
    """A label file as int64 class indices, `IGNORE_LABEL` kept: MTAN stores them as floats,
    which must then be whole numbers in [-1, num_classes)."""
    expect(path, array, size, "an H×W class map")
    labels = np.rint(array)
    whole = np.array_equal(labels, array)
    if not whole or labels.min() < IGNORE_LABEL or labels.max() >= num_classes:
        raise DataError(
            f"{path} holds values other than whole classes in [0, {num_classes}) and -1 "
            f"(unlabelled), from {array.min()} to {array.max()}; it is not this dataset's label map"
        )
    return torch.from_numpy(labels.astype(np.int64))


def scenes_root(cfg: DenseScenesConfig) -> Path:
    """`dataset.root`, else `$MTLRUN_DATA/<name>`, else `./data/<name>`."""
    return data_root(cfg.root) if cfg.root else data_root(None) / cfg.name


def load_scenes(cfg: DenseScenesConfig, kinds: dict[str, str], num_classes: int) -> RawData:
    root = scenes_root(cfg)
    if not root.is_dir():
        raise DataError(
            f"{root} is not a folder; download the preprocessed {cfg.name} (README: Benchmarks "
            "of the field) and point dataset.root (or $MTLRUN_DATA) at it"
        )
    train = read_split(root / "train", kinds, num_classes)
    test = read_split(root / "val", kinds, num_classes)
    if train.inputs.shape[1:] != test.inputs.shape[1:]:
        raise DataError(
            f"{root}: train images are {tuple(train.inputs.shape[2:])} but val images are "
            f"{tuple(test.inputs.shape[2:])}; both splits need one size"
        )
    targets = {
        "segmentation": TargetInfo(num_classes=num_classes, per_pixel=True),
        "depth": TargetInfo(dim=1, per_pixel=True),
    }
    if "normal" in kinds:
        targets["normal"] = TargetInfo(dim=3, per_pixel=True)
    info = DatasetInfo(cfg.name, tuple(train.inputs.shape[1:]), targets)
    augment = None
    if cfg.augment:
        scales = tuple(cfg.augment_scales)
        augment = partial(random_scale_crop, scales=scales, flip=cfg.augment_flip)
    return RawData(info, train, test, cfg.val_size, augment=augment)


@DATASETS.register("nyuv2", schema=DenseScenesConfig)
def nyuv2(cfg: DenseScenesConfig) -> RawData:
    """NYUv2 (Silberman et al. 2012) as MTAN preprocessed it: 13-class segmentation, depth and
    surface normals of 795 training and 654 test images, 288×384."""
    label = cfg.label_folder or "label"
    kinds = {"segmentation": label, "depth": "depth", "normal": "normal"}
    return load_scenes(cfg, kinds, NYUV2_CLASSES)


@DATASETS.register("cityscapes", schema=DenseScenesConfig)
def cityscapes(cfg: DenseScenesConfig) -> RawData:
    """Cityscapes (Cordts et al. 2016) as MTAN preprocessed it: 7-class segmentation and depth
    (disparity) of 2975 training and 500 test images, 128×256."""
    label = cfg.label_folder
    if label is None:
        has_label_7 = (scenes_root(cfg) / "train" / "label_7").is_dir()
        label = "label_7" if has_label_7 else "label"
    return load_scenes(cfg, {"segmentation": label, "depth": "depth"}, CITYSCAPES_CLASSES)
