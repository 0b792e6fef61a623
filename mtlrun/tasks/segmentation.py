"""Semantic segmentation: a class per pixel, as LibMTL's NYUv2 and Cityscapes examples score it
(`examples/nyu/utils.py`: `SegLoss`, `SegMetric`).

The loss is the pixel-wise cross-entropy over a batch's labelled pixels (those not
IGNORE_LABEL). mIoU and pixel accuracy come from one confusion matrix over every labelled pixel
of the split, not from per-batch scores: IoU_c = C_cc / (Σ_j C_cj + Σ_i C_ic − C_cc) per class c,
mIoU their mean, pixel accuracy Σ_c C_cc / Σ C. Where LibMTL averages over every class, and so
gives NaN when a class is in neither the targets nor the predictions of a split, the mean here
is over the classes that are in either; on a split where every class is, the two are equal.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.backbones import Encoding
from mtlrun.data import IGNORE_LABEL, Batch, TargetInfo
from mtlrun.parts import TASKS
from mtlrun.schemas.task import SegmentationConfig
from mtlrun.tasks.dense import DenseTask


def palette(n: int) -> Tensor:
    """n fixed colours (n×3 in [0, 1]): PASCAL VOC's colour map (the bits of a colour's index
    spread over its red, green and blue bits) from its second colour on, so class c is colour
    c + 1 of VOC's and black, VOC's first, is left to unlabelled pixels."""
    colours = []
    for index in range(1, n + 1):
        rgb, bits = [0, 0, 0], index
        for shift in range(7, -1, -1):
            for channel in range(3):
                rgb[channel] |= ((bits >> channel) & 1) << shift
            bits >>= 3
        colours.append(rgb)
    return torch.tensor(colours, dtype=torch.float) / 255


@TASKS.register("segmentation", schema=SegmentationConfig)
class Segmentation(DenseTask):
    directions = {"loss": "min", "miou": "max", "pixel_acc": "max"}
    primary_metric = "miou"
    target_kind = "class map"

    def __init__(self, cfg: SegmentationConfig, name: str) -> None:
        super().__init__(cfg, name)
        self.num_classes = 0

    def fits(self, target: TargetInfo) -> bool:
        return target.is_class

    def configure(self, target: TargetInfo) -> None:
        self.num_classes = self.out_channels = target.num_classes

    def loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        """The cross-entropy's mean over the labelled pixels; 0 for a batch without any (where
        `F.cross_entropy` gives NaN)."""
        labels = batch.targets[self.target]
        summed = F.cross_entropy(prediction, labels, ignore_index=IGNORE_LABEL, reduction="sum")
        return summed / (labels != IGNORE_LABEL).sum().clamp(min=1)

    def split_state(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        """The batch's confusion matrix C (true class × predicted class), as a product of
        one-hot matrices: unlike a bincount it needs no read-back on a GPU, and it is
        deterministic. Its counts are exact in float32 up to 2^24 pixels a batch."""
        labels = batch.targets[self.target].flatten()
        truth = F.one_hot(labels.clamp(min=0), self.num_classes).float()
        truth *= (labels != IGNORE_LABEL).unsqueeze(1)
        guess = F.one_hot(prediction.argmax(1).flatten(), self.num_classes).float()
        return {"confusion": (truth.T @ guess).double()}

    def split_metrics(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        confusion = state["confusion"]
        hits = confusion.diagonal()
        union = confusion.sum(0) + confusion.sum(1) - hits
        present = union > 0
        iou = hits / union.clamp(min=1)
        return {
            "miou": (iou * present).sum() / present.sum().clamp(min=1),
            "pixel_acc": hits.sum() / confusion.sum().clamp(min=1),
        }

    def pictures(self, prediction: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        colours = palette(self.num_classes).to(prediction.device)

        def paint(labels: Tensor) -> Tensor:
            image = colours[labels.clamp(min=0)] * (labels != IGNORE_LABEL).unsqueeze(-1)
            return image.permute(0, 3, 1, 2)

        return paint(batch.targets[self.target]), paint(prediction.argmax(1))
