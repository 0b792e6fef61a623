"""SegNet (Badrinarayanan, Kendall & Cipolla, "SegNet: A Deep Convolutional Encoder-Decoder
Architecture for Image Segmentation", TPAMI 2017) as MTAN's NYUv2 experiments build it (Liu,
Johns & Davison, CVPR 2019: `im2im_pred/model_segnet_split.py`; LibMTL's
`examples/nyu/segnet_mtan.py` has the same trunk).

Encoder stage k: a 3×3 conv (+ batch norm + ReLU) to `channels[k]`, one more such conv in the
first two stages and two more after, then 2×2 max pooling that keeps its indices. Decoder stage
k, run from the deepest up: max unpooling with encoder stage k's indices, a conv to
`channels[k - 1]` (`channels[0]` for the last), and as many more convs as encoder stage k has.
The code is the last decoder stage's map: `channels[0]` features per pixel, at the input's
resolution. Convolutions start from Xavier-normal weights and zero biases, as in MTAN's code.

Every stage is one block (the encoder's, then the decoder's), so sharing strategies can share
the first k of them, or mix the task networks' features after any one; the pooling indices ride
along between the blocks (`Stream`).
"""

import torch
from torch import Tensor, nn

from mtlrun.backbones.base import Backbone, FeatureLatent, Stream, features_of
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import BACKBONES
from mtlrun.schemas.backbone import SegNetConfig


def conv_layers(channels: list[int], batch_norm: bool) -> nn.Sequential:
    """3×3 convolutions from channels[0] through each next width, each with batch norm and
    ReLU."""
    layers: list[nn.Module] = []
    for c_in, c_out in zip(channels[:-1], channels[1:], strict=True):
        conv = nn.Conv2d(c_in, c_out, kernel_size=3, padding=1)
        nn.init.xavier_normal_(conv.weight)
        nn.init.zeros_(conv.bias)
        layers += [conv, *([nn.BatchNorm2d(c_out)] if batch_norm else []), nn.ReLU()]
    return nn.Sequential(*layers)


def extra_convs(stage: int) -> int:
    """The convolutions a stage has after its first: one in the first two stages, two after."""
    return 1 if stage < 2 else 2


class EncoderStage(nn.Module):
    def __init__(self, stage: int, c_in: int, c_out: int, batch_norm: bool) -> None:
        super().__init__()
        self.out_channels = c_out
        self.convs = conv_layers([c_in, *[c_out] * (1 + extra_convs(stage))], batch_norm)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2, return_indices=True)

    def gated(self, h: Tensor | Stream) -> tuple[Tensor, Tensor, Stream]:
        """The stage's features before pooling (what MTAN's attention reads and gates), and its
        output."""
        carried = h.carried if isinstance(h, Stream) else ()
        features = self.convs(features_of(h))
        pooled, indices = self.pool(features)
        return features, features, Stream(pooled, (*carried, indices))

    def forward(self, h: Tensor | Stream) -> Stream:
        return self.gated(h)[2]


def unpool(features: Tensor, indices: Tensor) -> Tensor:
    """Max unpooling after 2×2 pooling: each value back where its window's maximum was, zeros
    elsewhere, as a nearest upsampling masked by the pooling indices. It equals torch's
    `max_unpool2d`, which refuses to run under `trainer.deterministic` (it cannot know that
    non-overlapping windows never share an index)."""
    doubled = features.repeat_interleave(2, -2).repeat_interleave(2, -1)
    chosen = indices.repeat_interleave(2, -2).repeat_interleave(2, -1)
    height, width = doubled.shape[-2:]
    positions = torch.arange(height * width, device=indices.device).view(height, width)
    return doubled * (chosen == positions)


class DecoderStage(nn.Module):
    def __init__(self, stage: int, c_in: int, c_out: int, batch_norm: bool) -> None:
        super().__init__()
        self.out_channels = c_out
        self.convs = conv_layers([c_in, *[c_out] * (1 + extra_convs(stage))], batch_norm)

    def gated(self, h: Stream) -> tuple[Tensor, Tensor, Tensor | Stream]:
        """The stage's output features (what MTAN's attention reads and gates), and its output."""
        output = self(h)
        features = features_of(output)
        return features, features, output

    def forward(self, h: Stream) -> Tensor | Stream:
        *carried, indices = h.carried
        features = self.convs(unpool(h.features, indices))
        return Stream(features, tuple(carried)) if carried else features


def no_decoder() -> nn.Module:
    raise ConfigError("backbone=segnet has no decoder from its code back to the input")


@BACKBONES.register("segnet", schema=SegNetConfig)
def segnet(cfg: SegNetConfig, info: DatasetInfo) -> Backbone:
    if not info.is_image:
        raise ConfigError(
            f"backbone=segnet needs image data, but dataset={info.name} gives vectors of shape "
            f"{info.input_shape}"
        )
    stages, (_, height, width) = len(cfg.channels), info.input_shape
    if height % 2**stages or width % 2**stages:
        raise ConfigError(
            f"backbone.channels has {stages} stages, each halving the image, so its sides must "
            f"be divisible by {2**stages}, not {height}×{width}; use fewer channels entries"
        )
    widths = cfg.channels
    encoder = [
        EncoderStage(k, c_in, c_out, cfg.batch_norm)
        for k, (c_in, c_out) in enumerate(
            zip([info.input_shape[0], *widths[:-1]], widths, strict=True)
        )
    ]
    decoder = [
        DecoderStage(k, widths[k], widths[max(k - 1, 0)], cfg.batch_norm)
        for k in reversed(range(stages))
    ]
    return Backbone(
        info.input_shape,
        [*encoder, *decoder],
        FeatureLatent(),
        widths[0],
        no_decoder,
        normalization=info.normalization,
        per_pixel=True,
    )
