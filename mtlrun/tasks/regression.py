"""Regression of real-valued targets (MSE), with missing targets given as NaN.

Missing targets let one dataset express tasks with different amounts of labelled data, the
setting where multi-task learning pays off most (Caruana 1997; Argyriou et al. 2007): a task
with few labels borrows the representation learnt from the others.
"""

import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.data import Batch, DatasetInfo
from mtlrun.errors import ConfigError, listed
from mtlrun.parts import TASKS
from mtlrun.schemas.task import RegressionConfig
from mtlrun.tasks.base import Task
from mtlrun.tasks.classification import MLPHead


@TASKS.register("regression", schema=RegressionConfig)
class Regression(Task):
    """Mean squared error over the observed targets. A NaN target is missing: the loss is the
    mean over a batch's observed examples, and the metric sums cover only those, which
    `example_count` counts (the denominator of evaluation's means)."""

    directions = {"loss": "min", "mse": "min"}

    def __init__(self, cfg: RegressionConfig, name: str) -> None:
        super().__init__(name, cfg.weight)
        self.cfg = cfg
        self.target = cfg.target or name
        self.dim = 0

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        values = [k for k, t in info.targets.items() if t.dim is not None]
        if self.target not in values:
            raise ConfigError(
                f"tasks.{self.name}: dataset={info.name} has no real-valued target "
                f"{self.target!r}; its real-valued targets are: {listed(values)}"
            )
        self.dim = info.targets[self.target].dim

    def build_head(self, backbone: Backbone) -> nn.Module:
        dims = [backbone.code_dim, *self.cfg.hidden_dims, self.dim]
        return MLPHead(dims, self.cfg.activation, self.cfg.dropout)

    def observed(self, batch: Batch) -> tuple[Tensor, Tensor | None]:
        """The targets as N×dim with NaNs zeroed, and the mask of observed entries; no mask
        when the batch's split has every target (`Batch.incomplete`), which spares the step
        the masking."""
        target = batch.targets[self.target].reshape(len(batch), -1)
        if not batch.may_miss(self.target):
            return target, None
        # Zeroed rather than left NaN: NaN · 0 is NaN, and it would reach the gradient.
        return target.nan_to_num(), ~target.isnan()

    primary_metric = "mse"

    def per_example_loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        """Squared error averaged over each example's observed entries; 0 if it has none."""
        target, mask = self.observed(batch)
        squared = (prediction - target).pow(2)
        if mask is None:
            return squared.mean(1)
        return (squared * mask).sum(1) / mask.sum(1).clamp(min=1)

    def example_count(self, batch: Batch) -> Tensor | int:
        if not batch.may_miss(self.target):
            return len(batch)
        _, mask = self.observed(batch)
        return mask.any(1).sum()

    def loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        """The mean over observed examples; 0 (and no gradient) in a batch without any."""
        target, mask = self.observed(batch)
        if mask is None:
            return F.mse_loss(prediction, target)  # the same mean, in one operation
        squared = (prediction - target).pow(2) * mask
        per_example = squared.sum(1) / mask.sum(1).clamp(min=1)
        return per_example.sum() / mask.any(1).sum().clamp(min=1)

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        squared_error = self.per_example_loss(prediction, encoding, batch).sum()
        return {"loss": squared_error, "mse": squared_error}
