"""MTAN, the Multi-Task Attention Network (Liu, Johns & Davison, "End-to-End Multi-Task Learning
with Attention", CVPR 2019), on the conv trunk of `backbone=cnn`, the encoder and decoder of
`backbone=segnet` (the paper's SegNet-MTAN) or the stages of a ResNet (LibMTL's ResNet-MTAN)."""

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.backbones.base import Stream, features_of
from mtlrun.backbones.resnet import ResidualStage
from mtlrun.errors import ConfigError
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import MTANConfig
from mtlrun.sharing.base import BackboneFactory, ModelOutput
from mtlrun.sharing.heads import TaskHeads, last_with_parameters
from mtlrun.tasks import Task


def attention_module(in_channels: int, width: int, channels: int) -> nn.Module:
    """g: two 1×1 convolutions, ReLU between, sigmoid after: a soft mask per feature."""
    return nn.Sequential(
        nn.Conv2d(in_channels, width, 1),
        nn.ReLU(),
        nn.Conv2d(width, channels, 1),
        nn.Sigmoid(),
    )


def carry_module(c_in: int, stage: nn.Module) -> nn.Module:
    """f, from one attended map to the next stage's channels: a 3×3 convolution, or before a
    ResNet stage a residual block of the stage's kind with a 1×1 projection (LibMTL's
    `_conv_layer`), whose bottleneck keeps f's size near the stage's own."""
    c_out = stage.out_channels
    if not isinstance(stage, ResidualStage):
        return nn.Conv2d(c_in, c_out, 3, padding=1)
    projection = nn.Sequential(nn.Conv2d(c_in, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
    block = stage.block_type
    return block(c_in, c_out // block.expansion, downsample=projection)


def mask_width(stage: nn.Module) -> int:
    """g's inner width: a ResNet stage's bottleneck width (LibMTL's), else its channels."""
    if isinstance(stage, ResidualStage):
        return stage.out_channels // stage.block_type.expansion
    return stage.out_channels


class TaskAttention(nn.Module):
    """One task's attention networks, one per attended stage of the shared trunk, the
    convolutions f that carry its attended features from one stage to the next, and its own copy
    of what follows the trunk (a cnn's dense blocks, a ResNet's pooling) and of the latent layer."""

    def __init__(self, stages: list[nn.Module], after_trunk: list[nn.Module], latent) -> None:
        super().__init__()
        first, *rest = stages
        self.masks = nn.ModuleList(
            [attention_module(first.out_channels, mask_width(first), first.out_channels)]
            + [attention_module(2 * s.out_channels, mask_width(s), s.out_channels) for s in rest]
        )
        pairs = zip(stages[:-1], rest, strict=True)
        self.carry = nn.ModuleList([carry_module(s.out_channels, nxt) for s, nxt in pairs])
        self.dense = nn.ModuleList(copy.deepcopy(after_trunk))
        self.latent = copy.deepcopy(latent)


class ConvBlock:
    """A cnn block as MTAN sees it: its convolution (and activation), then its pooling."""

    def __init__(self, block: nn.Sequential) -> None:
        self.out_channels = block[0].out_channels


def as_stage(block: nn.Module) -> nn.Module | ConvBlock | None:
    """The trunk block as a stage MTAN attends over: a SegNet or ResNet stage (they split
    themselves with `gated`), a cnn's conv block; None for the others (a ResNet's stem, a
    cnn's dense blocks)."""
    if hasattr(block, "gated"):
        return block
    if isinstance(block, nn.Sequential) and isinstance(block[0], nn.Conv2d):
        return ConvBlock(block)
    return None


def gated(block: nn.Module, h: Tensor | Stream) -> tuple[Tensor, Tensor, Tensor | Stream]:
    """r and p, the trunk block's features its attention mask reads and those it gates, and the
    block's output: a cnn block's convolution (and activation) before its pooling, read and
    gated; a SegNet or ResNet stage's own split (`gated`)."""
    if hasattr(block, "gated"):
        return block.gated(h)
    p = block[:-1](h)
    return p, p, block[-1](p)


class MTAN(TaskHeads):
    """At attended trunk stage j, with r_j and p_j the shared trunk's features (`gated`: the
    same map for a cnn block and a SegNet stage; for a ResNet stage, r_j before its last
    residual block and p_j its output, as LibMTL's ResNet-MTAN splits it), task t's
    attended features are â_t^j = a_t^j ⊙ p_j, pooled where the block pools, with the mask
    a_t^1 = g_t^1(r_1) and, after the first stage, a_t^j = g_t^j([r_j ; f_t^j(â_t^(j-1))]) (the
    paper's eq. 1-2). Where r_j is larger than â_t^(j-1) (a SegNet decoder stage, after
    unpooling) â_t^(j-1) is first upsampled bilinearly, as in the paper's SegNet-MTAN; where f's
    output is twice r_j's size or more (a ResNet stage that strides) it is max-pooled to r_j's
    size, as LibMTL does; where it is otherwise smaller (a cnn's valid convolutions shrink the
    maps) it is resized to r_j's. Each task then has its own copy of what follows the trunk (a
    cnn's dense blocks) and of the latent layer (starting from the same weights), and its head:
    on SegNet and the dilated ResNet-50, the last stage's attended map is the task's feature
    map. Blocks before the first attended stage (a ResNet's stem) are shared and not attended.

    Where this differs from the paper: the attention modules have no batch normalisation (mtlrun
    runs of the cnn and SegNet have none, so that a DDP step equals one process's), f is one
    module per task rather than shared by all tasks, so that everything after the shared trunk
    belongs to one task: the trunk's features [r_1, p_1, ...] are then the cut gradient
    aggregators work on; and on SegNet each mask reads and gates the same features p_j (the
    paper's encoder masks read the stage's first convolution and gate its last, its decoder
    masks read the unpooled input). LibMTL's ResNet-MTAN repeats one attention module for every
    task (`[module] * task_num`), so its tasks share their masks; here each task has its own, as
    in the paper."""

    def __init__(
        self, backbone: Backbone, trunk: int, tasks: list[Task], task_relation: float
    ) -> None:
        super().__init__(tasks, backbone, task_relation)
        blocks = list(backbone.blocks)
        views = [as_stage(block) for block in blocks[:trunk]]
        stages = [stage for stage in views if stage is not None]
        self.attention = nn.ModuleDict(
            {name: TaskAttention(stages, blocks[trunk:], backbone.latent) for name in self.heads}
        )
        # The shared trunk ends with the last attended stage; the tasks hold their own copies
        # of the blocks after it and of the latent layer.
        self.attended = [stage is not None for stage in views]
        backbone.blocks = nn.ModuleList(blocks[:trunk])
        backbone.latent = nn.Identity()
        self.backbone = backbone

    def shared_features(self, x: Tensor) -> tuple[list[Tensor], list[Tensor], list[torch.Size]]:
        """r_j and p_j, the trunk's features each attended stage's mask reads and gates, and
        the size of each attended stage's output map."""
        reads, features, sizes = [], [], []
        h = self.backbone.standardise(x)
        for block, is_attended in zip(self.backbone.blocks, self.attended, strict=True):
            if not is_attended:
                h = block(h)
                continue
            r, p, h = gated(block, h)
            reads.append(r)
            features.append(p)
            sizes.append(features_of(h).shape[-2:])
        return reads, features, sizes

    def attend(
        self, task: str, reads: list[Tensor], features: list[Tensor], sizes: list[torch.Size]
    ) -> Encoding:
        attention = self.attention[task]
        attended = None
        for j, (r, p) in enumerate(zip(reads, features, strict=True)):
            if attended is None:
                mask = attention.masks[j](r)
            else:
                carry = attention.carry[j - 1]
                if attended.shape[-1] < r.shape[-1]:  # a decoder stage's unpooled map
                    upsampled = F.interpolate(
                        attended, size=r.shape[-2:], mode="bilinear", align_corners=True
                    )
                    carried = carry(upsampled)
                else:
                    carried = carry(attended)
                    if carried.shape[-1] >= 2 * r.shape[-1]:  # a ResNet stage that strides
                        carried = F.adaptive_max_pool2d(carried, r.shape[-2:])
                    elif carried.shape != r.shape:  # valid convolutions shrink the trunk's maps
                        carried = F.interpolate(carried, size=r.shape[-2:])
                mask = attention.masks[j](torch.cat([r, carried], dim=1))
            attended = mask * p
            if attended.shape[-2:] != sizes[j]:  # the block pools
                attended = F.max_pool2d(attended, 2)
        h = attended
        for block in attention.dense:
            h = block(h)
        return attention.latent(h)

    def forward(self, x: Tensor) -> ModelOutput:
        reads, features, sizes = self.shared_features(x)
        encodings = {name: self.attend(name, reads, features, sizes) for name in self.heads}
        predictions = {name: head(encodings[name]) for name, head in self.heads.items()}
        cut = [*{id(t): t for t in (*reads, *features)}.values()]  # r_j is p_j but on ResNets
        return ModelOutput(predictions, encodings, self.auxiliary(), cut)

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.attend(task, *self.shared_features(x))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return last_with_parameters(list(self.backbone.blocks))

    @property
    def shares_representation(self) -> bool:
        return True


@SHARING.register("mtan", schema=MTANConfig)
def mtan(cfg: MTANConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> MTAN:
    """`sharing=mtan`: the shared trunk (a CNN's conv blocks, SegNet's stages or a ResNet's) with
    a soft attention mask per task and stage."""
    backbone = make_backbone()
    positions = [i for i, block in enumerate(backbone.blocks) if as_stage(block) is not None]
    if not positions or backbone.has_prior:
        raise ConfigError(
            "sharing=mtan puts attention masks on a conv trunk's feature maps; use backbone=cnn, "
            "segnet, resnet50_dilated or cifar_resnet18"
        )
    return MTAN(backbone, positions[-1] + 1, tasks, cfg.task_relation)
