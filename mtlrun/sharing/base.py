"""The sharing interface: one nn.Module mapping a batch to one prediction per task."""

from collections.abc import Callable
from dataclasses import dataclass

from omegaconf import DictConfig
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.registry import Registry
from mtlrun.tasks import Task


@dataclass
class ModelOutput:
    predictions: dict[str, Tensor]  # one per task with a head
    encodings: dict[str, Encoding]  # the encoding each task's head read
    auxiliary_loss: Tensor | None  # KL terms and sharing penalties, already weighted


class MultiTaskModel(nn.Module):
    """What every sharing strategy builds."""

    def forward(self, x: Tensor) -> ModelOutput:
        raise NotImplementedError

    def encode(self, task: str, x: Tensor) -> Encoding:
        """The encoding `task`'s head reads for input `x`."""
        raise NotImplementedError

    def head(self, task: str) -> nn.Module:
        """`task`'s head (for reconstruction: the decoder, used for image grids)."""
        raise NotImplementedError


BackboneFactory = Callable[[], Backbone]
SHARING: Registry[Callable[[DictConfig, BackboneFactory, list[Task]], MultiTaskModel]] = Registry(
    "sharing"
)
