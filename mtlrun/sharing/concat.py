"""Concatenated codes: one autoencoder per task, every task head reading all their codes.

Each task with a loss gets its own autoencoder (encoder and decoder, from its own random
weights); the codes of all T autoencoders are concatenated and the concatenation, T × code_dim
wide, feeds every task head. The heads are built by the tasks as usual, against a stand-in
backbone whose code is that wide; a decoder head (reconstruction) first projects the
concatenation linearly to one code's width, then decodes as the backbone's decoders do.

The auxiliary loss adds, for every autoencoder, its reconstruction loss (with the likelihood of
the config's reconstruction task if there is one, else Bernoulli: BCE with logits summed over
pixels, mean over the batch) and, for VAEs, its β-weighted KL term; plus `sharing.penalty` · Ω,
where the relatedness term Ω is the mean squared distance between the task codes,
mean over pairs i<j and over the batch of ||f_i − f_j||² (f the deterministic code, μ for a
VAE): it pulls the autoencoders towards codes that agree, as sharing would, without tying
their weights. The autoencoders reconstruct the model's input; with a denoising task that is
the corrupted image.
"""

from dataclasses import dataclass
from itertools import combinations

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.config import parse
from mtlrun.errors import ConfigError
from mtlrun.sharing.base import SHARING, BackboneFactory, ModelOutput
from mtlrun.sharing.heads import SharingConfig, check_nonnegative, encoding_cut
from mtlrun.sharing.task_networks import TaskNetworks, own_networks
from mtlrun.tasks import Task
from mtlrun.tasks.reconstruction import Reconstruction, ReconstructionConfig


@dataclass
class ConcatConfig(SharingConfig):
    penalty: float = 0.01  # λ of the relatedness term: mean squared distance between task codes


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
    def cat(parts: list[Tensor | None]) -> Tensor | None:
        return None if parts[0] is None else torch.cat(parts, dim=1)

    return Encoding(
        features=cat([e.features for e in encodings]),
        z=cat([e.z for e in encodings]),
        mu=cat([e.mu for e in encodings]),
        logvar=cat([e.logvar for e in encodings]),
    )


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

    def codes(self, x: Tensor) -> tuple[dict[str, Encoding], Encoding]:
        """Each autoencoder's encoding of `x`, and their concatenation (what the heads read)."""
        own, _ = self.encode_all(x)
        return own, concatenate(list(own.values()))

    def forward(self, x: Tensor) -> ModelOutput:
        own, code = self.codes(x)
        predictions = {name: head(code) for name, head in self.heads.items()}
        reconstruction = [
            -self.likelihood.log_likelihood(self.decoders[name](encoding.z), x).mean()
            for name, encoding in own.items()
        ]
        kl = [self.networks[name].auxiliary_loss(encoding) for name, encoding in own.items()]
        relatedness = None
        if self.penalty and len(own) > 1:
            relatedness = self.penalty * code_distance([e.features for e in own.values()])
        auxiliary = self.auxiliary(*reconstruction, *kl, relatedness)
        encodings = dict.fromkeys(self.heads, code)
        return ModelOutput(predictions, encodings, auxiliary, encoding_cut(code))

    def encode(self, task: str, x: Tensor) -> Encoding:
        return self.codes(x)[1]

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """Every autoencoder's latent layer: each head reads all the codes."""
        return self.last_layers()

    @property
    def shares_representation(self) -> bool:
        return True  # every head reads the concatenation of all the codes


@SHARING.register("concat")
def concat(node: DictConfig, make_backbone: BackboneFactory, tasks: list[Task]) -> ConcatSharing:
    cfg = parse(ConcatConfig, node, "sharing")
    check_nonnegative("sharing.penalty", cfg.penalty)
    networks = own_networks(make_backbone, tasks)
    backbone = next(iter(networks.values()))
    if len(backbone.input_shape) != 3:
        raise ConfigError(
            "sharing=concat trains an autoencoder per task on reconstructing images, but the "
            f"dataset gives vectors of shape {backbone.input_shape}; use sharing=hard or "
            "sharing=single_task"
        )
    reconstruction = next((task for task in tasks if isinstance(task, Reconstruction)), None)
    likelihood = reconstruction or Reconstruction(
        "autoencoder", ReconstructionConfig(type="reconstruction")
    )
    return ConcatSharing(networks, tasks, cfg.task_relation, cfg.penalty, likelihood)
