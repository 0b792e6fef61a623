"""`type: hinge_classification`: classification trained with the multi-class hinge loss of
Crammer & Singer, "On the algorithmic implementation of multiclass kernel-based vector
machines", JMLR 2 (2001), 265-292.

For scores s (one per class, from a linear head on the code) and the true class y, the loss of
an example is

    max(0, 1 + max_{j≠y} s_j − s_y)

(their eq. 1-2 with margin 1): zero once the true class's score beats every other by at least
1, and otherwise growing linearly with the shortfall. Unlike the one-vs-rest hinge, only the
strongest wrong class is penalised.

Metrics (means over the examples):
- `error` ↓ (the primary metric, which Δm compares): the 0-1 error rate, an example counted
  wrong when its margin is not positive (a tie with a wrong class counts as wrong), so the
  hinge loss bounds it from above;
- `margin` ↑: s_y − max_{j≠y} s_j;
- `loss` ↓: the hinge loss.
"""

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from mtlrun import register
from mtlrun.backbones import Backbone, Encoding
from mtlrun.data import Batch, DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.schemas.task import MLPHeadConfig
from mtlrun.tasks import Direction, Task
from mtlrun.tasks.classification import Classification


@dataclass
class HingeClassificationConfig(MLPHeadConfig):
    pass  # target: a class label of the dataset; hidden_dims [] (the default): a linear head


def margins(scores: Tensor, labels: Tensor) -> Tensor:
    """s_y − max_{j≠y} s_j for each row of `scores` (N×K, K ≥ 2) and its label y."""
    true = scores.gather(1, labels.unsqueeze(1)).squeeze(1)
    is_true = nn.functional.one_hot(labels, scores.shape[1]).bool()
    strongest_wrong = scores.masked_fill(is_true, float("-inf")).amax(1)
    return true - strongest_wrong


def hinge_loss(scores: Tensor, labels: Tensor) -> Tensor:
    """Crammer & Singer's loss per example: max(0, 1 + max_{j≠y} s_j − s_y)."""
    return torch.relu(1 - margins(scores, labels))


@register.task("hinge_classification", schema=HingeClassificationConfig)
class HingeClassification(Classification):
    """Classification's target, label check and head, with Crammer & Singer's loss and metrics."""

    directions: ClassVar[dict[str, Direction]] = {"loss": "min", "error": "min", "margin": "max"}
    primary_metric = "error"

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        super().check(info, backbone, tasks)
        if self.num_classes < 2:
            raise ConfigError(
                f"tasks.{self.name}: the hinge loss needs at least 2 classes; "
                f"{self.target!r} has {self.num_classes}"
            )

    def per_example_loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        return hinge_loss(prediction, batch.targets[self.target])

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        margin = margins(prediction, batch.targets[self.target])
        return {
            "loss": torch.relu(1 - margin).sum(),
            "error": (margin <= 0).sum().float(),
            "margin": margin.sum(),
        }
