"""`backbone=residual_mlp`: a residual MLP trunk on vectors (or flattened images).

A linear stem maps the input to `width` features, then `num_blocks` residual blocks each
compute x + f(x) with f(x) = W₂·act(W₁·x) (He et al. 2016's identity shortcut, on dense
layers). The last block's output is the code the task heads share (no latent layer). The
stem and each block are separate blocks of the trunk, so sharing strategies can split it
(`sharing=hard sharing.shared_layers=2` shares the stem and the first residual block). The
decoder mirrors the trunk: residual blocks, then a linear map back to the input's shape.
"""

import math
from dataclasses import dataclass

from torch import Tensor, nn

from mtlrun import register
from mtlrun.backbones import Backbone
from mtlrun.backbones.base import FeatureLatent, activation
from mtlrun.config import check_range
from mtlrun.data import DatasetInfo


@dataclass
class ResidualMLPConfig:
    name: str
    width: int = 64  # the features of the stem and of every block (the code's size)
    num_blocks: int = 2  # residual blocks after the stem
    activation: str = "relu"
    dropout: float = 0.0  # inside f, after the activation

    def check(self, key: str) -> None:
        check_range(f"{key}.width", self.width, 1)
        check_range(f"{key}.num_blocks", self.num_blocks, 0)
        check_range(f"{key}.dropout", self.dropout, 0, 1)


class ResidualBlock(nn.Module):
    """x + W₂·act(W₁·x)."""

    def __init__(self, width: int, act: str, dropout: float = 0.0) -> None:
        super().__init__()
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        self.f = nn.Sequential(
            nn.Linear(width, width), activation(act), *drop, nn.Linear(width, width)
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.f(x)


@register.backbone("residual_mlp", schema=ResidualMLPConfig)
def residual_mlp(cfg: ResidualMLPConfig, info: DatasetInfo) -> Backbone:
    inputs = math.prod(info.input_shape)
    stem = nn.Sequential(nn.Flatten(), nn.Linear(inputs, cfg.width), activation(cfg.activation))
    blocks = [ResidualBlock(cfg.width, cfg.activation, cfg.dropout) for _ in range(cfg.num_blocks)]

    def make_decoder() -> nn.Module:
        return nn.Sequential(
            *(ResidualBlock(cfg.width, cfg.activation) for _ in range(cfg.num_blocks)),
            nn.Linear(cfg.width, inputs),
            nn.Unflatten(1, info.input_shape),
        )

    return Backbone(
        info.input_shape,
        [stem, *blocks],
        FeatureLatent(),
        cfg.width,
        make_decoder,
        normalization=info.normalization,
    )
