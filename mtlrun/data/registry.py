"""The dataset registry: `dataset.name` to a loader returning the train and test splits."""

from collections.abc import Callable
from dataclasses import dataclass

from mtlrun.data.split import Batch, DatasetInfo, Split


@dataclass
class RawData:
    """What a loader returns, before the validation split is carved out and moved to a device."""

    info: DatasetInfo
    train: Split
    test: Split
    val_size: int
    # A dataset's own validation split (CelebA's official one), used instead of carving
    # `val_size` examples out of the training split.
    val: Split | None = None
    # What training batches go through on the device before each step (`Data.augment`).
    augment: Callable[[Batch], Batch] | None = None
