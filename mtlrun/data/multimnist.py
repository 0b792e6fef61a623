"""MultiMNIST and MultiFashion: two overlapping images, one label per side.

The recipe of Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization" (NeurIPS
2018), after Sabour et al. 2017: each image is placed at the top-left of a 36×36 canvas, a random
partner at an offset of 6 pixels on both axes, the two are merged by a pixel-wise max and the
canvas is resized (nearest neighbour) to 28×28. The 60k training images come from the source's
training set, the 10k test images from its test set.

Composition is a few tensor operations; the result is cached as uint8 tensors under
`dataset.cache_dir` (never in the data root, which may be read-only), keyed by the source, the
seed and the recipe's version.
"""

import os
import sys
from pathlib import Path

import torch
from torch import Tensor

from mtlrun.data.registry import RawData
from mtlrun.data.split import DatasetInfo, Split, TargetInfo, images_to_float
from mtlrun.data.torchvision_sets import (
    load_torchvision,
    normalization,
)
from mtlrun.errors import DataError
from mtlrun.parts import DATASETS
from mtlrun.runfolder import write_atomic
from mtlrun.schemas.dataset import MultiMNISTConfig

RECIPE_VERSION = 1  # bump when the composition changes, so stale caches are not reused
CANVAS = 36
OFFSET = 6
SIZE = 28


def cache_root(cache_dir: str | None) -> Path:
    """`dataset.cache_dir`, else `$MTLRUN_CACHE`, else `~/.cache/mtlrun`."""
    return Path(cache_dir or os.environ.get("MTLRUN_CACHE") or "~/.cache/mtlrun").expanduser()


def save_cache(path: Path, tensors: dict[str, Tensor], dataset: str) -> None:
    """A dataset's prepared tensors into its cache file, whole or not at all."""
    try:
        write_atomic(path, lambda tmp: torch.save(tensors, tmp))
    except OSError as error:
        raise DataError(
            f"cannot write the {dataset} cache {path} ({error.strerror or error}); point "
            "dataset.cache_dir (or $MTLRUN_CACHE) at a writable folder"
        ) from None


def layers(images: Tensor, partners: Tensor, size: int = SIZE) -> tuple[Tensor, Tensor]:
    """The two layers of Sener & Koltun's canvas, each N×size×size like `images`: the images at
    (0, 0) and their partners at (6, 6) of a 36×36 canvas, each resized (nearest) to size×size."""
    n, height, width = images.shape
    left = torch.zeros((n, CANVAS, CANVAS), dtype=images.dtype)
    right = torch.zeros_like(left)
    left[:, :height, :width] = images
    right[:, OFFSET : OFFSET + height, OFFSET : OFFSET + width] = partners
    # Nearest neighbour at pixel centres (PIL's convention, which the original scipy imresize
    # used): output pixel i reads canvas pixel floor((i + 0.5) · 36 / size).
    index = ((torch.arange(size) + 0.5) * CANVAS / size).long()
    return left[:, index][:, :, index], right[:, index][:, :, index]


def compose(images: Tensor, partners: Tensor) -> Tensor:
    """N×28×28 uint8 images overlaid with their partners as Sener & Koltun do: left at (0, 0),
    right at (6, 6) of a 36×36 canvas, pixel-wise max, nearest resize to 28×28."""
    return torch.maximum(*layers(images, partners))


def make_pairs(
    images: Tensor, labels: Tensor, generator: torch.Generator, names: tuple[str, str]
) -> tuple[Tensor, dict[str, Tensor]]:
    """One composed image per source image; its partner is drawn uniformly at random."""
    partner = torch.randint(len(images), (len(images),), generator=generator)
    left_name, right_name = names
    return compose(images, images[partner]), {left_name: labels, right_name: labels[partner]}


def has_shapes(arrays: dict[str, Tensor], names: tuple[str, str]) -> bool:
    """Whether each split is N uint8 SIZE×SIZE images with N int64 labels per name (their
    range is `check_consistent`'s to check, for every dataset)."""
    for split in ("train", "test"):
        images = arrays[f"{split}/images"]
        if not isinstance(images, Tensor) or images.dtype != torch.uint8:
            return False
        if images.dim() != 3 or tuple(images.shape[1:]) != (SIZE, SIZE) or len(images) == 0:
            return False
        for name in names:
            labels = arrays[f"{split}/{name}"]
            if not isinstance(labels, Tensor) or labels.dtype != torch.int64:
                return False
            if labels.shape != images.shape[:1]:
                return False
    return True


def read_cache(path: Path, names: tuple[str, str]) -> dict[str, Tensor] | None:
    """The cached splits, or None (with a one-line warning) when the file is damaged or not
    what this version writes: it is derived data, so it is rebuilt rather than trusted."""
    expected = {f"{split}/{key}" for split in ("train", "test") for key in ("images", *names)}
    try:
        arrays = torch.load(path, weights_only=True)
        if isinstance(arrays, dict) and expected <= arrays.keys() and has_shapes(arrays, names):
            return arrays
        problem = "holds other arrays than expected"
    except Exception as error:  # a truncated or garbled file: any reader error means rebuild
        problem = f"cannot be read ({str(error).splitlines()[0] if str(error) else error!r})"
    print(f"mtlrun: warning: the cache {path} {problem}; rebuilding it", file=sys.stderr)
    return None


def build_or_load(
    dataset_class: type, cfg: MultiMNISTConfig, names: tuple[str, str]
) -> dict[str, Tensor]:
    """The composed splits as uint8 images and int64 labels, from the cache when it has them."""
    file_name = f"{dataset_class.__name__}_seed{cfg.seed}_v{RECIPE_VERSION}.pt"
    path = cache_root(cfg.cache_dir) / "multimnist" / file_name
    if path.is_file():
        cached = read_cache(path, names)
        if cached is not None:
            return cached
    train_x, train_y, test_x, test_y = load_torchvision(dataset_class, cfg)
    generator = torch.Generator().manual_seed(cfg.seed)
    arrays: dict[str, Tensor] = {}
    for split, images, labels in (("train", train_x, train_y), ("test", test_x, test_y)):
        composed, targets = make_pairs(images, labels, generator, names)
        arrays[f"{split}/images"] = composed
        arrays.update({f"{split}/{name}": value for name, value in targets.items()})
    save_cache(path, arrays, cfg.name)
    return arrays


def load_multi(
    dataset_class: type, cfg: MultiMNISTConfig, names: tuple[str, str], statistics: str
) -> RawData:
    arrays = build_or_load(dataset_class, cfg, names)

    def split(part: str) -> Split:
        targets = {name: arrays[f"{part}/{name}"] for name in names}
        return Split(images_to_float(arrays[f"{part}/images"]), targets)

    targets = {name: TargetInfo(num_classes=10) for name in names}
    info = DatasetInfo(cfg.name, (1, SIZE, SIZE), targets, normalization(statistics, cfg))
    return RawData(info, split("train"), split("test"), cfg.val_size)


@DATASETS.register("multimnist", schema=MultiMNISTConfig)
def multimnist(cfg: MultiMNISTConfig) -> RawData:
    """Two overlapping MNIST digits per image, labels left_digit and right_digit (Sener & Koltun
    2018), built from the MNIST files in `dataset.root` (null: $MTLRUN_DATA, else ./data);
    with `dataset.download` torchvision downloads them when they are missing (online only)."""
    from torchvision.datasets import MNIST

    return load_multi(MNIST, cfg, ("left_digit", "right_digit"), "MNIST")


@DATASETS.register("multifashion", schema=MultiMNISTConfig)
def multifashion(cfg: MultiMNISTConfig) -> RawData:
    """Two overlapping FashionMNIST items per image, labels left_class and right_class (Sener &
    Koltun 2018), built from the FashionMNIST files in `dataset.root` (null: $MTLRUN_DATA, else
    ./data); with `dataset.download` torchvision downloads them when they are missing (online
    only)."""
    from torchvision.datasets import FashionMNIST

    return load_multi(FashionMNIST, cfg, ("left_class", "right_class"), "FashionMNIST")
