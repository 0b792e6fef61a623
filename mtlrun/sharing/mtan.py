"""MTAN, the Multi-Task Attention Network (Liu, Johns & Davison, "End-to-End Multi-Task Learning
with Attention", CVPR 2019), on the conv trunk of `backbone=cnn` or the encoder and decoder of
`backbone=segnet` (the paper's SegNet-MTAN)."""

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.backbones.base import Stream, features_of
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


def gated(block: nn.Module, h: Tensor | Stream) -> tuple[Tensor, Tensor | Stream]:
    """p, a trunk block's features that the attention masks gate, and the block's output: a cnn
    block's convolution (and activation) before its pooling; a SegNet stage's split of its own
    (`gated`: an encoder stage's map before pooling, a decoder stage's output)."""
    if isinstance(block, nn.Sequential):
        p = block[:-1](h)
        return p, block[-1](p)
    return block.gated(h)


class MTAN(TaskHeads):
    """At trunk block j, with p_j the shared trunk's features (`gated`), task t's attended
    features are â_t^j = a_t^j ⊙ p_j, pooled where the block pools, with the mask
    a_t^1 = g_t^1(p_1) and, after the first block, a_t^j = g_t^j([p_j ; f_t^j(â_t^(j-1))]) (the
    paper's eq. 1-2). Where p_j is larger than â_t^(j-1) (a SegNet decoder stage, after
    unpooling) â_t^(j-1) is first upsampled bilinearly, as in the paper's SegNet-MTAN; where it
    is smaller (the trunk's valid convolutions shrink it) f's output is resized to p_j's map.
    Each task then has its own copy of the trunk's dense blocks (a cnn's) and latent layer
    (starting from the same weights), and its head: on SegNet, the last decoder stage's attended
    map is the task's feature map.

    Where this differs from the paper: the attention modules have no batch normalisation (mtlrun
    runs have none, so that a DDP step equals one process's), f is one convolution per task
    rather than shared by all tasks, so that everything after the shared trunk belongs to one
    task: the trunk's features [p_1, ...] are then the cut gradient aggregators work on; and on
    SegNet each mask reads and gates the same features p_j (the paper's encoder masks read the
    stage's first convolution and gate its last, its decoder masks read the unpooled input)."""

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

    def shared_features(self, x: Tensor) -> tuple[list[Tensor], list[torch.Size]]:
        """p_j, the trunk's features each block's attention gates, and the size of each
        block's output map."""
        features, sizes = [], []
        h = self.backbone.standardise(x)
        for block in self.backbone.blocks:
            p, h = gated(block, h)
            features.append(p)
            sizes.append(features_of(h).shape[-2:])
        return features, sizes

    def attend(self, task: str, features: list[Tensor], sizes: list[torch.Size]) -> Encoding:
        attention = self.attention[task]
        attended = None
        for j, p in enumerate(features):
            if attended is None:
                mask = attention.masks[j](p)
            else:
                carry = attention.carry[j - 1]
                if attended.shape[-1] < p.shape[-1]:  # a decoder stage's unpooled map
                    upsampled = F.interpolate(
                        attended, size=p.shape[-2:], mode="bilinear", align_corners=True
                    )
                    carried = carry(upsampled)
                else:
                    carried = carry(attended)
                    if carried.shape != p.shape:  # valid convolutions shrink the trunk's maps
                        carried = F.interpolate(carried, size=p.shape[-2:])
                mask = attention.masks[j](torch.cat([p, carried], dim=1))
            attended = mask * p
            if attended.shape[-2:] != sizes[j]:  # the block pools
                attended = F.max_pool2d(attended, 2)
        h = attended
        for block in attention.dense:
            h = block(h)
        return attention.latent(h)

    def forward(self, x: Tensor) -> ModelOutput:
        features, sizes = self.shared_features(x)
        encodings = {name: self.attend(name, features, sizes) for name in self.heads}
        predictions = {name: head(encodings[name]) for name, head in self.heads.items()}
        return ModelOutput(predictions, encodings, self.auxiliary(), features)

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.attend(task, *self.shared_features(x))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_with_parameters(list(self.backbone.blocks))

    @property
    def shares_representation(self) -> bool:
        return True


@SHARING.register("mtan", schema=MTANConfig)
def mtan(cfg: MTANConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MTAN:
    """`sharing=mtan`: the shared trunk (a CNN's conv blocks, or all of SegNet's stages) with a
    soft attention mask per task and block."""
    backbone = make_backbone()
    if backbone.per_pixel:
        channels = [block.out_channels for block in backbone.blocks]
    else:
        channels = [
            block[0].out_channels
            for block in backbone.blocks
            if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d)
        ]
    if not channels or backbone.has_prior:
        raise ConfigError(
            "sharing=mtan puts attention masks on a conv trunk's feature maps; use backbone=cnn "
            "or backbone=segnet"
        )
    return MTAN(backbone, channels, tasks, cfg.task_relation)
