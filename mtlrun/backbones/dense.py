"""Dense backbones: an MLP trunk, a dense autoencoder and a VAE; they take images or vectors."""

import math

from torch import nn

from mtlrun.backbones.base import (
    Backbone,
    FeatureLatent,
    GaussianLatent,
    PointLatent,
    activation,
    dense_blocks,
    dense_decoder,
)
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import BACKBONES
from mtlrun.schemas.backbone import DenseAEConfig, MLPConfig, VAEConfig


def build_dense(cfg: DenseAEConfig, info: DatasetInfo, kl_weight: float | None) -> Backbone:
    activation(cfg.activation)  # fail early on an unknown name
    latent_type = GaussianLatent if kl_weight is not None else PointLatent
    width = cfg.hidden_dims[-1] if cfg.hidden_dims else math.prod(info.input_shape)
    blocks = dense_blocks([math.prod(info.input_shape), *cfg.hidden_dims], cfg.activation)
    if not blocks:
        blocks = [nn.Flatten()]
    return Backbone(
        info.input_shape,
        blocks,
        latent_type(width, cfg.latent_dim),
        cfg.latent_dim,
        lambda: dense_decoder(cfg.latent_dim, cfg.hidden_dims, info.input_shape, cfg.activation),
        kl_weight,
        info.normalization,
    )


@BACKBONES.register("dense_ae", schema=DenseAEConfig)
def dense_ae(cfg: DenseAEConfig, info: DatasetInfo) -> Backbone:
    return build_dense(cfg, info, kl_weight=None)


@BACKBONES.register("vae", schema=VAEConfig)
def vae(cfg: VAEConfig, info: DatasetInfo) -> Backbone:
    return build_dense(cfg, info, kl_weight=cfg.beta)


@BACKBONES.register("mlp", schema=MLPConfig)
def mlp_trunk(cfg: MLPConfig, info: DatasetInfo) -> Backbone:
    """A multilayer perceptron whose last hidden layer is the code the task heads share (the
    hard-sharing network of Caruana 1997); its decoder mirrors the layers below the code."""
    if not cfg.hidden_dims:
        raise ConfigError("backbone.hidden_dims is empty; the mlp needs at least one layer")
    blocks = dense_blocks(
        [math.prod(info.input_shape), *cfg.hidden_dims], cfg.activation, cfg.dropout
    )
    code_dim = cfg.hidden_dims[-1]
    return Backbone(
        info.input_shape,
        blocks,
        FeatureLatent(),
        code_dim,
        lambda: dense_decoder(code_dim, cfg.hidden_dims[:-1], info.input_shape, cfg.activation),
        normalization=info.normalization,
    )
