"""The backbone interface: a trunk of blocks, a latent layer, and a decoder factory."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from mtlrun.config import check_choice

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


def activation(name: str) -> nn.Module:
    check_choice("backbone.activation", name, list(ACTIVATIONS))
    return ACTIVATIONS[name]()


@dataclass
class Encoding:
    """What an encoder gives the task heads."""

    features: Tensor  # the deterministic code the task heads read (the posterior mean for a VAE)
    z: Tensor  # the code the decoder reads (a posterior sample for a VAE)
    mu: Tensor | None = None
    logvar: Tensor | None = None

    @property
    def kl(self) -> Tensor | None:
        """KL(q(z|x) || N(0, I)) per example, analytic."""
        if self.mu is None or self.logvar is None:
            return None
        return 0.5 * (self.mu.pow(2) + self.logvar.exp() - 1.0 - self.logvar).sum(dim=1)


@dataclass(frozen=True)
class Stream:
    """What flows from one block to the next when a later block needs more than the features
    (a SegNet decoder stage unpools with its encoder stage's pooling indices): the feature map,
    and the tensors riding along, in the order the blocks added them. Sharing strategies mix,
    share and cut through the features only (`features_of`, `with_features`)."""

    features: Tensor
    carried: tuple[Tensor, ...]


def features_of(h: Tensor | Stream) -> Tensor:
    """The features a block passes on."""
    return h.features if isinstance(h, Stream) else h


def with_features(h: Tensor | Stream, features: Tensor) -> Tensor | Stream:
    """`h` with its features replaced (by a cross-stitch unit's mix), what rides along kept."""
    return Stream(features, h.carried) if isinstance(h, Stream) else features


class PointLatent(nn.Module):
    """An autoencoder's code: a linear map, no noise."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, latent_dim)

    def forward(self, h: Tensor) -> Encoding:
        z = self.linear(h)
        return Encoding(features=z, z=z)


class GaussianLatent(nn.Module):
    """A VAE's diagonal Gaussian posterior, sampled with the reparameterisation trick."""

    def __init__(self, in_features: int, latent_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, 2 * latent_dim)  # μ and log σ², in one matmul

    def forward(self, h: Tensor) -> Encoding:
        mu, logvar = self.linear(h).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return Encoding(features=mu, z=z, mu=mu, logvar=logvar)


class FeatureLatent(nn.Module):
    """A classifier trunk's last hidden layer, used as the code as it is."""

    def forward(self, h: Tensor) -> Encoding:
        return Encoding(features=h, z=h)


class Backbone(nn.Module):
    """An encoder (`blocks` then `latent`) and a factory for decoders from its code.

    The blocks are kept as a list so that sharing strategies can split the trunk into
    shared and task-specific parts, or mix activations between task copies after a block.
    A `per_pixel` backbone's code is a feature map N×`code_dim`×h×w (at the input's resolution
    for SegNet), which the heads of per-pixel tasks read.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        blocks: list[nn.Module],
        latent: nn.Module,
        code_dim: int,
        make_decoder: Callable[[], nn.Module],
        kl_weight: float | None = None,
        normalization: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
        per_pixel: bool = False,
    ) -> None:
        super().__init__()
        self.per_pixel = per_pixel
        self.input_shape = input_shape
        self.blocks = nn.ModuleList(blocks)
        self.latent = latent
        self.code_dim = code_dim
        self._make_decoder = make_decoder
        self.kl_weight = kl_weight  # β for a VAE, None for a backbone without a prior
        self.standardises = normalization is not None
        if normalization is not None:  # per channel: shaped (C, 1, 1) against (N, C, H, W)
            mean, std = (
                torch.tensor(v).view(-1, *[1] * (len(input_shape) - 1)) for v in normalization
            )
            self.register_buffer("input_mean", mean)
            self.register_buffer("input_std", std)

    @property
    def has_prior(self) -> bool:
        return self.kl_weight is not None

    def standardise(self, x: Tensor) -> Tensor:
        """The input as the first block sees it: standardised with the dataset's per-channel
        statistics when `dataset.normalize` is on (the data itself stays in [0, 1], so
        reconstruction targets and image grids are untouched)."""
        return (x - self.input_mean) / self.input_std if self.standardises else x

    def encode(self, x: Tensor) -> Encoding:
        x = self.standardise(x)
        for block in self.blocks:
            x = block(x)
        return self.latent(x)

    def make_decoder(self) -> nn.Module:
        """A fresh decoder mapping codes to logits shaped like the input."""
        return self._make_decoder()


def mlp(dims: list[int], act: str, final_activation: bool = True) -> list[nn.Module]:
    """Linear layers with activations between them (and after the last if asked)."""
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        layers.append(nn.Linear(d_in, d_out))
        if final_activation or i < len(dims) - 2:
            layers.append(activation(act))
    return layers


def dense_blocks(dims: list[int], act: str, dropout: float = 0.0) -> list[nn.Module]:
    """One block per Linear + activation (+ dropout); the first flattens its input."""
    blocks: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(zip(dims[:-1], dims[1:], strict=True)):
        flatten = [nn.Flatten()] if i == 0 else []
        drop = [nn.Dropout(dropout)] if dropout > 0 else []
        blocks.append(nn.Sequential(*flatten, nn.Linear(d_in, d_out), activation(act), *drop))
    return blocks


def dense_decoder(latent_dim: int, hidden_dims: list[int], output_shape: tuple[int, ...], act: str):
    """Mirror of a dense encoder: code → reversed hidden widths → logits shaped like the input."""
    dims = [latent_dim, *reversed(hidden_dims), math.prod(output_shape)]
    return nn.Sequential(*mlp(dims, act, final_activation=False), nn.Unflatten(1, output_shape))
