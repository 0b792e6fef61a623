"""In-memory splits: whole datasets as tensors, batches by shuffled index slicing."""

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor

# A per-pixel class label with this value is ignored by its loss and metrics (LibMTL's convention
# for NYUv2's and Cityscapes' unlabelled pixels).
IGNORE_LABEL = -1


@dataclass(frozen=True)
class TargetInfo:
    """What one target holds: class indices (`num_classes`) or real values (`dim`), one per
    example, or with `per_pixel` one per pixel of the input image: class indices N×H×W
    (`IGNORE_LABEL` where unlabelled) or real values N×dim×H×W (dense prediction)."""

    num_classes: int | None = None
    dim: int | None = None
    per_pixel: bool = False

    @property
    def is_class(self) -> bool:
        return self.num_classes is not None


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    input_shape: tuple[int, ...]  # (C, H, W) for images, (D,) for vectors
    targets: dict[str, TargetInfo] = field(default_factory=dict)
    # Per-channel (mean, std) the encoders standardise their inputs with (dataset.normalize);
    # the data and every reconstruction target stay in [0, 1].
    normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3


@dataclass
class Batch:
    inputs: Tensor
    targets: dict[str, Tensor]
    # The targets that may be missing (NaN) on some rows: those of the batch's split that are
    # missing anywhere, found once when the split was made, so that a task whose targets are
    # all there does no masking per step. None for a batch made by hand: any may be missing.
    incomplete: frozenset[str] | None = None

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def may_miss(self, target: str) -> bool:
        """Whether `target` may be missing (NaN) on some of the batch's rows."""
        return self.incomplete is None or target in self.incomplete

    def rows(self, index: Tensor | slice) -> "Batch":
        return Batch(
            self.inputs[index], {k: v[index] for k, v in self.targets.items()}, self.incomplete
        )


@dataclass
class Split:
    """One split held as tensors: inputs are float32 (images in [0, 1], N×C×H×W), or uint8
    images (0 to 255) that become float32 in [0, 1] batch by batch, a quarter of the memory
    for a large image set (CelebA)."""

    inputs: Tensor
    targets: dict[str, Tensor]
    incomplete: frozenset[str] = field(init=False)  # see `Batch.incomplete`
    # Targets of one value per row and of one dtype, side by side as the columns of one
    # matrix: a batch gathers them with one indexing operation, not one per target (on a GPU,
    # a kernel launch each), and takes each target as a view of its column.
    columns: list[tuple[Tensor, list[str]]] = field(init=False)

    def __post_init__(self) -> None:
        self.incomplete = frozenset(
            name
            for name, values in self.targets.items()
            if values.is_floating_point() and bool(values.isnan().any())
        )
        by_dtype: dict[torch.dtype, list[str]] = {}
        for name, values in self.targets.items():
            if values.dim() == 1 and len(values) == len(self.inputs):
                by_dtype.setdefault(values.dtype, []).append(name)
        self.columns = [
            (torch.stack([self.targets[name] for name in names], 1), names)
            for names in by_dtype.values()
            if len(names) > 1
        ]

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def to(self, device: torch.device) -> "Split":
        return Split(self.inputs.to(device), {k: v.to(device) for k, v in self.targets.items()})

    def subset(self, index: Tensor) -> "Split":
        index = index.to(self.inputs.device)
        return Split(self.inputs[index], {k: v[index] for k, v in self.targets.items()})

    def head(self, n: int) -> Batch:
        return self.batch(slice(0, n))

    def batch(self, index: Tensor | slice) -> Batch:
        gathered = {}
        for matrix, names in self.columns:
            rows = matrix[index]
            gathered.update((name, rows[:, column]) for column, name in enumerate(names))
        targets = {k: gathered[k] if k in gathered else v[index] for k, v in self.targets.items()}
        inputs = self.inputs[index]
        if inputs.dtype == torch.uint8:
            inputs = inputs.float().div_(255.0)
        return Batch(inputs, targets, self.incomplete)

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> Iterator[Batch]:
        """Shuffled batches when a generator is given, else in order; the last may be short."""
        n = len(self)
        if generator is None:
            for start in range(0, n, batch_size):
                yield self.batch(slice(start, start + batch_size))
            return
        order = torch.randperm(n, generator=generator).to(self.inputs.device, non_blocking=True)
        for start in range(0, n, batch_size):
            yield self.batch(order[start : start + batch_size])

    def num_batches(self, batch_size: int) -> int:
        return -(-len(self) // batch_size)


@dataclass
class Data:
    info: DatasetInfo
    train: Split
    val: Split
    test: Split
    # A random augmentation each training batch goes through (`dataset.augment`), drawn from
    # torch's random state on the batch's device; None: batches as they are.
    augment: Callable[[Batch], Batch] | None = None


def split_off_validation(train: Split, val_size: int, seed: int) -> tuple[Split, Split]:
    """Carve a seeded random validation split out of the training split."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=generator)
    return train.subset(order[val_size:]), train.subset(order[:val_size])


def images_to_float(images: Tensor) -> Tensor:
    """uint8 images (N×H×W, N×C×H×W or N×H×W×C with C in {1, 3}) to float N×C×H×W in [0, 1]."""
    if images.dim() == 3:
        images = images.unsqueeze(1)
    elif images.dim() == 4 and images.shape[-1] in (1, 3) and images.shape[1] not in (1, 3):
        images = images.permute(0, 3, 1, 2)
    return images.contiguous().float().div_(255.0)


def digit_targets(digits: Tensor) -> dict[str, Tensor]:
    """A digit label and the labels derived from it: parity (odd = 1) and magnitude (≥ 5 = 1)."""
    digits = digits.long()
    return {"digit": digits, "parity": digits % 2, "magnitude": (digits >= 5).long()}


DIGIT_TARGETS = {
    "digit": TargetInfo(num_classes=10),
    "parity": TargetInfo(num_classes=2),
    "magnitude": TargetInfo(num_classes=2),
}
