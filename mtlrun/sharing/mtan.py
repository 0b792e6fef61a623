"""MTAN, the Multi-Task Attention Network (Liu, Johns & Davison, "End-to-End Multi-Task Learning
with Attention", CVPR 2019), on the conv trunk of `backbone=cnn`."""

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.errors import ConfigError
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import MTANConfig
from mtlrun.sharing.base import BackboneFactory, ModelOutput
from mtlrun.sharing.heads import TaskHeads, last_with_parameters
from mtlrun.tasks import Task


def attention_module(in_channels: int, channels: int) -> nn.Module:
    """g: two 1×1 convolutions, ReLU between, sigmoid after: a soft mask per feature."""
    return nn.Sequential(
        nn.Conv2d(in_channels, channels, 1),
        nn.ReLU(),
        nn.Conv2d(channels, channels, 1),
        nn.Sigmoid(),
    )


class TaskAttention(nn.Module):
    """One task's attention networks, one per conv block of the shared trunk, the 3×3
    convolutions f that carry its attended features from one block to the next, and its own
    copy of the trunk's dense blocks and latent layer."""

    def __init__(self, channels: list[int], backbone: Backbone, conv_blocks: int) -> None:
        super().__init__()
        self.masks = nn.ModuleList(
            [attention_module(channels[0], channels[0])]
            + [attention_module(2 * c, c) for c in channels[1:]]
        )
        pairs = zip(channels[:-1], channels[1:], strict=True)
        self.carry = nn.ModuleList([nn.Conv2d(c_in, c_out, 3, padding=1) for c_in, c_out in pairs])
        self.dense = nn.ModuleList(copy.deepcopy(list(backbone.blocks[conv_blocks:])))
        self.latent = copy.deepcopy(backbone.latent)


class MTAN(TaskHeads):
    """At conv block j, with p_j the shared trunk's features before pooling, task t's attended
    features are â_t^j = pool(a_t^j ⊙ p_j), with the mask a_t^1 = g_t^1(p_1) and, after the
    first block, a_t^j = g_t^j([p_j ; f_t^j(â_t^(j-1))]) (the paper's eq. 1-2; f_t^j resized to
    p_j's map when the trunk's convolutions are valid). Each task then has its own copy of the
    trunk's dense blocks and latent layer (starting from the same weights), and its head.

    Where this differs from the paper: the attention modules have no batch normalisation (mtlrun
    runs have none, so that a DDP step equals one process's), and f is one convolution per task
    rather than shared by all tasks, so that everything after the shared trunk belongs to one
    task: the trunk's features [p_1, ...] are then the cut gradient aggregators work on."""

    def __init__(
        self, backbone: Backbone, channels: list[int], tasks: list[Task], task_relation: float
    ) -> None:
        super().__init__(tasks, backbone, task_relation)
        self.conv_blocks = len(channels)
        self.attention = nn.ModuleDict(
            {name: TaskAttention(channels, backbone, len(channels)) for name in self.heads}
        )
        # The shared trunk is the conv blocks; the tasks hold their own dense blocks and latent.
        backbone.blocks = nn.ModuleList(backbone.blocks[: len(channels)])
        backbone.latent = nn.Identity()
        self.backbone = backbone

    def shared_features(self, x: Tensor) -> list[Tensor]:
        """p_j, the trunk's features before each conv block's pooling."""
        features = []
        h = self.backbone.standardise(x)
        for block in self.backbone.blocks:
            p = block[:-1](h)  # conv (dropout), activation
            features.append(p)
            h = block[-1](p)  # pooling
        return features

    def attend(self, task: str, features: list[Tensor]) -> Encoding:
        attention = self.attention[task]
        attended = None
        for j, p in enumerate(features):
            if attended is None:
                mask = attention.masks[j](p)
            else:
                carried = attention.carry[j - 1](attended)
                if carried.shape != p.shape:  # valid convolutions shrink the trunk's maps
                    carried = F.interpolate(carried, size=p.shape[-2:])
                mask = attention.masks[j](torch.cat([p, carried], dim=1))
            attended = F.max_pool2d(mask * p, 2)
        h = attended
        for block in attention.dense:
            h = block(h)
        return attention.latent(h)

    def forward(self, x: Tensor) -> ModelOutput:
        features = self.shared_features(x)
        encodings = {name: self.attend(name, features) for name in self.heads}
        predictions = {name: head(encodings[name]) for name, head in self.heads.items()}
        return ModelOutput(predictions, encodings, self.auxiliary(), features)

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.attend(task, self.shared_features(x))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_with_parameters(list(self.backbone.blocks))

    @property
    def shares_representation(self) -> bool:
        return True


@SHARING.register("mtan", schema=MTANConfig)
def mtan(cfg: MTANConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MTAN:
    """`sharing=mtan`: the shared CNN trunk with a soft attention mask per task and block."""
    backbone = make_backbone()
    conv = [
        block
        for block in backbone.blocks
        if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d)
    ]
    if not conv or backbone.has_prior:
        raise ConfigError(
            "sharing=mtan puts attention masks on a conv trunk's feature maps; use backbone=cnn"
        )
    return MTAN(backbone, [block[0].out_channels for block in conv], tasks, cfg.task_relation)
