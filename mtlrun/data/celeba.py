"""CelebA (Liu et al., ICCV 2015) as Sener & Koltun ("Multi-Task Learning as Multi-Objective
Optimization", NeurIPS 2018) train on it: the 40 binary attributes of the aligned faces as 40
tasks (or `dataset.attributes`, a subset), the images resized to 64×64 (their configs.json),
the official partition of list_eval_partition.txt (162,770 train, 19,867 validation, 19,962
test images).

The files and their parsing are torchvision's (`torchvision.datasets.CelebA`, under
`root/celeba/`); its md5 check of the list files stays on unless `dataset.verify_checksums=false`
(fixtures, corrected copies), which checks that they are there instead. Their loader subtracts
a BGR mean and lets scipy's `imresize` rescale each image to its own range; here each image is
resized with PIL's bilinear filter (what `imresize` used) and kept in [0, 1].

Decoding 202,599 JPEGs takes minutes, so the resized images are cached as uint8 under
`dataset.cache_dir` and held as uint8 (2.5 GB at 64×64, not 10 GB of float32): batches become
float when they are sliced (`Split.batch`).
"""

import hashlib
import sys
from pathlib import Path

import torch
from torch import Tensor

from mtlrun.data.multimnist import cache_root, save_cache
from mtlrun.data.registry import RawData
from mtlrun.data.split import DatasetInfo, Split, TargetInfo
from mtlrun.data.torchvision_sets import data_root
from mtlrun.errors import DataError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import CELEBA_ATTRIBUTES, CelebAConfig

RECIPE_VERSION = 1  # bump when the decoding changes, so stale caches are not reused
SPLITS = ("train", "valid", "test")


def celeba_class(verify_checksums: bool) -> type:
    """torchvision's CelebA, or (without checksums) one whose integrity check asks only that
    the list files and the image folder are there."""
    from torchvision.datasets import CelebA

    if verify_checksums:
        return CelebA

    class UncheckedCelebA(CelebA):
        def _check_integrity(self) -> bool:
            folder = Path(self.root) / self.base_folder
            present = all((folder / name).is_file() for name in list_files(CelebA))
            return present and (folder / "img_align_celeba").is_dir()

    return UncheckedCelebA


def list_files(celeba: type) -> list[str]:
    """The list files torchvision reads (the images come unpacked, not as their zip)."""
    return [name for _, _, name in celeba.file_list if not name.endswith(".zip")]


def check_files(folder: Path, verify_checksums: bool) -> None:
    """Name the first missing list file, or (with checksums) one that is not the published
    one, before torchvision reports either as 'not found or corrupted'."""
    from torchvision.datasets import CelebA
    from torchvision.datasets.utils import check_integrity

    for _, md5, name in CelebA.file_list:
        path = folder / name
        if name.endswith(".zip"):
            continue
        if not path.is_file():
            raise DataError(
                f"{path} is missing; CelebA needs img_align_celeba/ and its list files in "
                f"{folder} (torchvision's layout), or dataset.download=true where Google Drive "
                "allows it"
            )
        if verify_checksums and not check_integrity(str(path), md5):
            raise DataError(
                f"{path} is damaged, or is not CelebA's published file (its md5 differs); "
                "replace it, or set dataset.verify_checksums=false to read it as it is"
            )
    if not (folder / "img_align_celeba").is_dir():
        raise DataError(f"{folder / 'img_align_celeba'} is missing; unpack img_align_celeba.zip")


def open_split(root: Path, split: str, cfg: CelebAConfig):
    """torchvision's CelebA of one split, its list files parsed."""
    try:
        return celeba_class(cfg.verify_checksums)(
            str(root), split=split, target_type="attr", download=cfg.download
        )
    except ValueError as error:  # a list file that does not parse as torchvision expects
        raise DataError(
            f"the list files in {root / 'celeba'} do not parse as CelebA's ({error}); "
            "replace them with the published ones"
        ) from None
    except Exception as error:  # a failed download: gdown missing, the Drive quota, no network
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise DataError(
            f"CelebA could not be downloaded into {root / 'celeba'} ({reason}); put its files "
            "there (README: Benchmarks of the field)"
        ) from None


def decode(folder: Path, names: list[str], size: int) -> Tensor:
    """The images, resized to size × size with PIL's bilinear filter, as uint8 N×3×size×size."""
    from PIL import Image

    images = torch.empty((len(names), size, size, 3), dtype=torch.uint8)
    for i, name in enumerate(names):
        path = folder / name
        try:
            with Image.open(path) as image:
                resized = image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)
        except OSError as error:  # missing, damaged, or not an image (PIL's errors are OSErrors)
            raise DataError(
                f"{path} is not an image that can be read ({str(error).splitlines()[0]}); "
                "replace it with CelebA's"
            ) from None
        images[i] = torch.frombuffer(bytearray(resized.tobytes()), dtype=torch.uint8).view(
            size, size, 3
        )
    return images.permute(0, 3, 1, 2).contiguous()


def cached_images(folder: Path, splits: dict[str, list[str]], cfg: CelebAConfig) -> dict:
    """Each split's decoded images, from the cache when it holds these files at this size."""
    digest = hashlib.sha256("\n".join(n for names in splits.values() for n in names).encode())
    key = f"{cfg.image_size}px_{digest.hexdigest()[:16]}_v{RECIPE_VERSION}.pt"
    path = cache_root(cfg.cache_dir) / "celeba" / key
    if path.is_file():
        try:
            images = torch.load(path, weights_only=True)
            shapes_match = all(
                images[split].shape == (len(names), 3, cfg.image_size, cfg.image_size)
                and images[split].dtype == torch.uint8
                for split, names in splits.items()
            )
            if shapes_match:
                return images
            problem = "holds other arrays than expected"
        except Exception as error:  # a truncated or garbled file: any reader error means rebuild
            problem = f"cannot be read ({str(error).splitlines()[0] if str(error) else error!r})"
        print(f"mtlrun: warning: the cache {path} {problem}; rebuilding it", file=sys.stderr)
    images = {split: decode(folder, names, cfg.image_size) for split, names in splits.items()}
    save_cache(path, images, "CelebA")
    return images


@DATASETS.register("celeba", schema=CelebAConfig)
def celeba(cfg: CelebAConfig) -> RawData:
    """CelebA's aligned faces, one binary target per attribute (module docstring)."""
    root = data_root(cfg.root)
    folder = root / "celeba"
    if not cfg.download:
        check_files(folder, cfg.verify_checksums)
    datasets = {split: open_split(root, split, cfg) for split in SPLITS}
    header = datasets["train"].attr_names
    wanted = list(cfg.attributes or CELEBA_ATTRIBUTES)
    missing = [name for name in wanted if name not in header]
    if missing:
        raise DataError(
            f"{folder / 'list_attr_celeba.txt'} has no attribute {missing[0]!r}; its header "
            "is not CelebA's 40 attributes"
        )
    columns = [header.index(name) for name in wanted]
    names = {split: list(dataset.filename) for split, dataset in datasets.items()}
    images = cached_images(folder / "img_align_celeba", names, cfg)

    def split(part: str) -> Split:
        attributes = datasets[part].attr[:, columns].long()
        return Split(images[part], {name: attributes[:, k] for k, name in enumerate(wanted)})

    targets = {name: TargetInfo(num_classes=2) for name in wanted}
    info = DatasetInfo(cfg.name, (3, cfg.image_size, cfg.image_size), targets)
    return RawData(info, split("train"), split("test"), 0, val=split("valid"))
