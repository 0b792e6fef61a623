"""The dataset registry: `dataset.name` to a loader returning the train and test splits."""

from dataclasses import dataclass

from mtlrun.data.split import DatasetInfo, Split


@dataclass
class RawData:
    """What a loader returns, before the validation split is carved out and moved to a device."""

    info: DatasetInfo
    train: Split
    test: Split
    val_size: int
