"""Convolutional backbones: a CNN (conv-pool blocks, then dense layers) and a conv VAE.

With `padding: valid` and channels [10, 20], kernel 5, hidden_dims [50], the CNN is the LeNet
trunk of the MultiMNIST experiments (Sener & Koltun 2018).
"""

import math

from torch import nn

from mtlrun.backbones.base import (
    Backbone,
    FeatureLatent,
    GaussianLatent,
    activation,
    dense_blocks,
    mlp,
)
from mtlrun.config import check_choice
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import BACKBONES
from mtlrun.schemas.backbone import CNNConfig, ConvVAEConfig

PADDINGS = ("same", "valid")


def conv_geometry(
    name: str, info: DatasetInfo, channels: list[int], kernel: int, padding: str
) -> tuple[int, int]:
    """The feature map's height and width after the conv blocks (each conv, then 2× pooling)."""
    if not info.is_image:
        raise ConfigError(
            f"backbone={name} needs image data, but dataset={info.name} gives vectors of "
            f"shape {info.input_shape}; use backbone=mlp, backbone=dense_ae or backbone=vae"
        )
    check_choice("backbone.padding", padding, PADDINGS)
    _, height, width = info.input_shape
    if padding == "same":
        # The decoder's up-convolutions double the size exactly, back to the input's.
        scale = 2 ** len(channels)
        if height % scale or width % scale:
            raise ConfigError(
                f"backbone.channels has {len(channels)} pooling blocks, so image sides must be "
                f"divisible by {scale}, not {height}×{width}; use fewer channels entries"
            )
        return height // scale, width // scale
    for _ in channels:
        height, width = (height - kernel + 1) // 2, (width - kernel + 1) // 2
    if min(height, width) < 1:
        raise ConfigError(
            f"backbone.padding=valid with kernel_size={kernel} and {len(channels)} conv blocks "
            f"shrinks {info.input_shape[1]}×{info.input_shape[2]} images to nothing; use fewer "
            "channels entries, a smaller kernel_size or padding=same"
        )
    return height, width


def conv_trunk(
    name: str,
    cfg: CNNConfig | ConvVAEConfig,
    info: DatasetInfo,
    dropout: float,
    conv_dropout: float = 0.0,
) -> tuple[list[nn.Module], tuple[int, int], int]:
    """Conv-pool blocks, then dense blocks: (the blocks, the conv feature map, the output width)."""
    feature_map = conv_geometry(name, info, cfg.channels, cfg.kernel_size, cfg.padding)
    flat = cfg.channels[-1] * math.prod(feature_map)
    blocks: list[nn.Module] = []
    in_channels = [info.input_shape[0], *cfg.channels[:-1]]
    for i, (c_in, c_out) in enumerate(zip(in_channels, cfg.channels, strict=True)):
        layers = [nn.Conv2d(c_in, c_out, cfg.kernel_size, padding=cfg.padding)]
        if conv_dropout > 0 and i == len(cfg.channels) - 1:
            layers.append(nn.Dropout2d(conv_dropout))
        blocks.append(nn.Sequential(*layers, activation(cfg.activation), nn.MaxPool2d(2)))
    blocks += dense_blocks([flat, *cfg.hidden_dims], cfg.activation, dropout)
    if not cfg.hidden_dims:
        blocks.append(nn.Flatten())
    return blocks, feature_map, cfg.hidden_dims[-1] if cfg.hidden_dims else flat


def conv_decoder(
    code_dim: int,
    hidden_dims: list[int],
    channels: list[int],
    feature_map: tuple[int, int],
    output_shape: tuple[int, ...],
    act: str,
) -> nn.Module:
    """Mirror of the conv encoder: dense layers up to the feature map, then 2× up-convolutions,
    then (after valid convolutions, which the up-convolutions do not undo) a resize to the
    input's exact size."""
    flat = channels[-1] * feature_map[0] * feature_map[1]
    layers = mlp([code_dim, *reversed(hidden_dims), flat], act)
    layers.append(nn.Unflatten(1, (channels[-1], *feature_map)))
    outs = [*reversed(channels[:-1]), output_shape[0]]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs, strict=True)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
        if i < len(channels) - 1:
            layers.append(activation(act))
    scale = 2 ** len(channels)
    if (feature_map[0] * scale, feature_map[1] * scale) != tuple(output_shape[1:]):
        layers.append(nn.Upsample(size=tuple(output_shape[1:]), mode="bilinear"))
    return nn.Sequential(*layers)


@BACKBONES.register("cnn", schema=CNNConfig)
def cnn(cfg: CNNConfig, info: DatasetInfo) -> Backbone:
    blocks, feature_map, code_dim = conv_trunk("cnn", cfg, info, cfg.dropout, cfg.conv_dropout)
    hidden = cfg.hidden_dims[:-1]
    return Backbone(
        info.input_shape,
        blocks,
        FeatureLatent(),
        code_dim,
        lambda: conv_decoder(
            code_dim, hidden, cfg.channels, feature_map, info.input_shape, cfg.activation
        ),
        normalization=info.normalization,
    )


@BACKBONES.register("conv_vae", schema=ConvVAEConfig)
def conv_vae(cfg: ConvVAEConfig, info: DatasetInfo) -> Backbone:
    blocks, feature_map, width = conv_trunk("conv_vae", cfg, info, dropout=0.0)
    return Backbone(
        info.input_shape,
        blocks,
        GaussianLatent(width, cfg.latent_dim),
        cfg.latent_dim,
        lambda: conv_decoder(
            cfg.latent_dim,
            cfg.hidden_dims,
            cfg.channels,
            feature_map,
            info.input_shape,
            cfg.activation,
        ),
        kl_weight=cfg.beta,
        normalization=info.normalization,
    )
