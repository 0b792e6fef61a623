"""Classification of a dataset label (the digit, the class, or a label derived from them)."""

import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.backbones.base import activation
from mtlrun.data import Batch, DatasetInfo
from mtlrun.errors import ConfigError, listed
from mtlrun.parts import TASKS
from mtlrun.schemas.task import ClassificationConfig
from mtlrun.tasks.base import Task


class MLPHead(nn.Module):
    """An MLP on the encoder's deterministic features."""

    def __init__(self, dims: list[int], act: str, dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for d_in, d_out in zip(dims[:-2], dims[1:-1], strict=True):
            layers += [nn.Linear(d_in, d_out), activation(act)]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
        layers.append(nn.Linear(dims[-2], dims[-1]))
        self.net = nn.Sequential(*layers)

    def forward(self, encoding: Encoding) -> Tensor:
        return self.net(encoding.features)


@TASKS.register("classification", schema=ClassificationConfig)
class Classification(Task):
    directions = {"loss": "min", "acc": "max", "nll": "min"}

    def __init__(self, cfg: ClassificationConfig, name: str) -> None:
        super().__init__(name, cfg.weight)
        self.cfg = cfg
        self.target = cfg.target or name
        self.grid_label = self.target
        self.num_classes = 0

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        labels = [k for k, t in info.targets.items() if t.is_class]
        if self.target not in labels:
            raise ConfigError(
                f"tasks.{self.name}: dataset={info.name} has no label {self.target!r}; "
                f"its labels are: {listed(labels)}"
            )
        self.num_classes = info.targets[self.target].num_classes

    def build_head(self, backbone: Backbone) -> nn.Module:
        dims = [backbone.code_dim, *self.cfg.hidden_dims, self.num_classes]
        return MLPHead(dims, self.cfg.activation, self.cfg.dropout)

    primary_metric = "acc"

    def per_example_loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        return F.cross_entropy(prediction, batch.targets[self.target], reduction="none")

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        nll = self.per_example_loss(prediction, encoding, batch).sum()
        correct = (prediction.argmax(1) == batch.targets[self.target]).sum()
        return {"loss": nll, "nll": nll, "acc": correct.float()}
