"""Hard parameter sharing: one shared encoder, one head per task (Caruana 1997)."""

from dataclasses import dataclass

from omegaconf import DictConfig
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.config import parse
from mtlrun.sharing.base import SHARING, BackboneFactory, ModelOutput, MultiTaskModel
from mtlrun.tasks import Task


@dataclass
class HardSharingConfig:
    name: str


class HardSharing(MultiTaskModel):
    def __init__(self, backbone: Backbone, tasks: list[Task]) -> None:
        super().__init__()
        self.backbone = backbone
        heads = {task.name: task.build_head(backbone) for task in tasks}
        self.heads = nn.ModuleDict({name: head for name, head in heads.items() if head is not None})
        self.task_names = [task.name for task in tasks]

    def forward(self, x: Tensor) -> ModelOutput:
        encoding = self.backbone.encode(x)
        predictions = {name: head(encoding) for name, head in self.heads.items()}
        encodings = dict.fromkeys(self.task_names, encoding)
        shared = [encoding.features] if encoding.mu is None else [encoding.mu, encoding.logvar]
        return ModelOutput(
            predictions, encodings, self.backbone.auxiliary_loss(encoding), shared=shared
        )

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.backbone.encode(x)

    def head(self, task: str) -> nn.Module:
        return self.heads[task]


@SHARING.register("hard")
def hard(node: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> HardSharing:
    parse(HardSharingConfig, node, "sharing")
    return HardSharing(make_backbone(), tasks)
