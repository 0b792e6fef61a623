"""Concatenated codes: one autoencoder per task, every task head reading all their codes.

Each task with a loss gets its own autoencoder (encoder and decoder, from its own random
weights); the codes of all T autoencoders are concatenated and the concatenation, T × code_dim
wide, feeds every task head. The heads are built by the tasks as usual, against a stand-in
backbone whose code is that wide; a decoder head (reconstruction) first projects the
concatenation linearly to one code's width, then decodes as the backbone's decoders do.

What belongs to a task is in its loss: task t's loss is its head's loss plus autoencoder t's own
reconstruction loss (the likelihood of the config's reconstruction task if there is one, else
Bernoulli for images and squared error for vectors) and, for VAEs, that autoencoder's β·KL. A
reconstruction head reads the concatenated posterior, so its ELBO's KL is the sum of every
autoencoder's. The auxiliary loss, which belongs to no task, is `sharing.penalty` · Ω, where the
relatedness term Ω is the mean squared distance between the task codes, mean over pairs i<j and
over the batch of ||f_i − f_j||² (f the deterministic code, μ for a VAE): it pulls the
autoencoders towards codes that agree, as sharing would, without tying their weights. The
autoencoders reconstruct the model's input; with a denoising task that is the corrupted image.

The concatenated code ([μ, log σ²] for VAEs) is the cut every task reads through: the sample z,
each autoencoder's slice of it and each autoencoder's KL are computed from it, so gradient
aggregators and GradNorm see every encoder as shared and every decoder as a task's own.
"""

from itertools import combinations

import torch
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.data import Batch, DatasetInfo
from mtlrun.parts import SHARING
from mtlrun.schemas.sharing import ConcatConfig
from mtlrun.sharing.base import BackboneFactory, ModelOutput
from mtlrun.sharing.heads import encoding_cut
from mtlrun.sharing.task_networks import TaskNetworks, own_networks
from mtlrun.tasks import Task
from mtlrun.tasks.reconstruction import Reconstruction, ReconstructionConfig


def concatenated_code(backbone: Backbone, num_codes: int) -> Backbone:
    """A stand-in for `backbone` to build the heads against: no layers, a code `num_codes`
    times as wide, and decoders that project that code linearly to `backbone`'s width first."""
    width = backbone.code_dim * num_codes
    return Backbone(
        backbone.input_shape,
        [],
        nn.Identity(),
        width,
        lambda: nn.Sequential(nn.Linear(width, backbone.code_dim), backbone.make_decoder()),
        backbone.kl_weight,
    )


def concatenate(encodings: list[Encoding]) -> Encoding:
    """The encodings side by side; for VAEs the sample z is drawn from the concatenated μ and
    log σ², so everything computed from the code passes through them."""
    features = torch.cat([e.features for e in encodings], dim=1)
    if encodings[0].mu is None:
        return Encoding(features=features, z=features)
    mu = torch.cat([e.mu for e in encodings], dim=1)
    logvar = torch.cat([e.logvar for e in encodings], dim=1)
    z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
    return Encoding(features=mu, z=z, mu=mu, logvar=logvar)


def slices(code: Encoding, count: int) -> list[Encoding]:
    """Each autoencoder's part of the concatenated code (views of it, not the encoders' own
    outputs)."""

    def split(tensor: Tensor | None) -> list[Tensor | None]:
        return [None] * count if tensor is None else list(tensor.chunk(count, dim=1))

    parts = zip(*(split(t) for t in (code.features, code.z, code.mu, code.logvar)), strict=True)
    return [Encoding(features=f, z=z, mu=mu, logvar=logvar) for f, z, mu, logvar in parts]


def code_distance(codes: list[Tensor]) -> Tensor:
    """Mean over pairs of codes and over the batch of ||f_i − f_j||²."""
    pairs = [(a - b).pow(2).sum(1).mean() for a, b in combinations(codes, 2)]
    return torch.stack(pairs).mean()


class ConcatSharing(TaskNetworks):
    def __init__(
        self,
        networks: dict[str, Backbone],
        tasks: list[Task],
        task_relation: float,
        penalty: float,
        likelihood: Reconstruction,
    ) -> None:
        source = concatenated_code(next(iter(networks.values())), len(networks))
        super().__init__(networks, tasks, task_relation, head_source=source)
        self.decoders = nn.ModuleDict({name: net.make_decoder() for name, net in networks.items()})
        self.penalty = penalty
        self.likelihood = likelihood

    def code(self, x: Tensor) -> Encoding:
        """The concatenation of every autoencoder's code of `x`: what the heads read."""
        own, _ = self.encode_all(x)
        return concatenate(list(own.values()))

    def forward(self, x: Tensor) -> ModelOutput:
        code = self.code(x)
        own = dict(zip(self.networks, slices(code, len(self.networks)), strict=True))
        predictions = {name: head(code) for name, head in self.heads.items()}
        own_losses = {
            name: self.likelihood.per_example_loss(self.decoders[name](part.z), part, Batch(x, {}))
            for name, part in own.items()
        }
        relatedness = None
        if self.penalty and len(own) > 1:
            relatedness = self.penalty * code_distance([e.features for e in own.values()])
        encodings = dict.fromkeys(self.heads, code)
        return ModelOutput(
            predictions, encodings, self.auxiliary(relatedness), encoding_cut(code), own_losses
        )

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.code(x)

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Every autoencoder's latent layer: each head reads all the codes."""
        return self.last_layers()

    @property
    def shares_representation(self) -> bool:
        return True  # every head reads the concatenation of all the codes


@SHARING.register("concat", schema=ConcatConfig)
def concat(cfg: ConcatConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> ConcatSharing:
    networks = own_networks(make_backbone, tasks)
    backbone = next(iter(networks.values()))
    likelihood = next((task for task in tasks if task.reconstructs), None)
    if likelihood is None:
        inputs = DatasetInfo("concat", backbone.input_shape)
        default = ReconstructionConfig(
            "reconstruction", likelihood="bernoulli" if inputs.is_image else "mse"
        )
        likelihood = Reconstruction(default, "autoencoder")
        likelihood.check(inputs, backbone, tasks)  # images or vectors, and the VAE's β
    return ConcatSharing(networks, tasks, cfg.task_relation, cfg.penalty, likelihood)
