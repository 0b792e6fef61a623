"""Convolutional backbones: a CNN (conv-pool blocks, then dense layers) and a conv VAE."""

import math
from dataclasses import dataclass, field

from omegaconf import DictConfig
from torch import nn

from mtlrun.backbones.base import (
    Backbone,
    FeatureLatent,
    GaussianLatent,
    activation,
    dense_blocks,
    mlp,
)
from mtlrun.backbones.registry import BACKBONES
from mtlrun.config import parse
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError


@dataclass
class CNNConfig:
    name: str
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    hidden_dims: list[int] = field(default_factory=lambda: [128])
    activation: str = "relu"
    dropout: float = 0.0


@dataclass
class ConvVAEConfig:
    name: str
    channels: list[int] = field(default_factory=lambda: [32, 64])
    kernel_size: int = 3
    hidden_dims: list[int] = field(default_factory=lambda: [256])
    latent_dim: int = 16
    activation: str = "relu"
    beta: float = 1.0


def conv_geometry(name: str, info: DatasetInfo, channels: list[int]) -> tuple[int, int]:
    """The feature map's height and width after one 2× pooling per conv block."""
    if not info.is_image:
        raise ConfigError(
            f"backbone={name} needs image data, but dataset={info.name} gives vectors of "
            f"shape {info.input_shape}; use backbone=dense_ae or backbone=vae"
        )
    _, height, width = info.input_shape
    scale = 2 ** len(channels)
    if height % scale or width % scale:
        raise ConfigError(
            f"backbone.channels has {len(channels)} pooling blocks, so image sides must be "
            f"divisible by {scale}, not {height}×{width}; use fewer channels entries"
        )
    return height // scale, width // scale


def conv_blocks(in_channels: int, channels: list[int], kernel: int, act: str) -> list[nn.Module]:
    blocks: list[nn.Module] = []
    for c_in, c_out in zip([in_channels, *channels[:-1]], channels, strict=True):
        conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2)
        blocks.append(nn.Sequential(conv, activation(act), nn.MaxPool2d(2)))
    return blocks


def conv_decoder(
    code_dim: int,
    hidden_dims: list[int],
    channels: list[int],
    feature_map: tuple[int, int],
    output_channels: int,
    act: str,
) -> nn.Module:
    """Mirror of the conv encoder: dense layers up to the feature map, then 2× up-convolutions."""
    flat = channels[-1] * feature_map[0] * feature_map[1]
    layers = mlp([code_dim, *reversed(hidden_dims), flat], act)
    layers.append(nn.Unflatten(1, (channels[-1], *feature_map)))
    outs = [*reversed(channels[:-1]), output_channels]
    for i, (c_in, c_out) in enumerate(zip(reversed(channels), outs, strict=True)):
        layers.append(nn.ConvTranspose2d(c_in, c_out, kernel_size=4, stride=2, padding=1))
        if i < len(channels) - 1:
            layers.append(activation(act))
    return nn.Sequential(*layers)


@BACKBONES.register("cnn")
def cnn(node: DictConfig, info: DatasetInfo) -> Backbone:
    cfg = parse(CNNConfig, node, "backbone")
    feature_map = conv_geometry("cnn", info, cfg.channels)
    flat = cfg.channels[-1] * math.prod(feature_map)
    blocks = conv_blocks(info.input_shape[0], cfg.channels, cfg.kernel_size, cfg.activation)
    blocks += dense_blocks([flat, *cfg.hidden_dims], cfg.activation, cfg.dropout)
    if not cfg.hidden_dims:
        blocks.append(nn.Flatten())
    code_dim = cfg.hidden_dims[-1] if cfg.hidden_dims else flat
    hidden = cfg.hidden_dims[:-1]
    return Backbone(
        info.input_shape,
        blocks,
        FeatureLatent(),
        code_dim,
        lambda: conv_decoder(
            code_dim, hidden, cfg.channels, feature_map, info.input_shape[0], cfg.activation
        ),
    )


@BACKBONES.register("conv_vae")
def conv_vae(node: DictConfig, info: DatasetInfo) -> Backbone:
    cfg = parse(ConvVAEConfig, node, "backbone")
    feature_map = conv_geometry("conv_vae", info, cfg.channels)
    flat = cfg.channels[-1] * math.prod(feature_map)
    blocks = conv_blocks(info.input_shape[0], cfg.channels, cfg.kernel_size, cfg.activation)
    blocks += dense_blocks([flat, *cfg.hidden_dims], cfg.activation, dropout=0.0)
    if not cfg.hidden_dims:
        blocks.append(nn.Flatten())
    width = cfg.hidden_dims[-1] if cfg.hidden_dims else flat
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
            info.input_shape[0],
            cfg.activation,
        ),
        kl_weight=cfg.beta,
    )
