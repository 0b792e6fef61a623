"""Reconstruction: a decoder head, Bernoulli or Gaussian likelihood, ELBO terms for VAEs."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.config import check_choice
from mtlrun.data import Batch, DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.tasks.base import TASKS, Task


@dataclass
class ReconstructionConfig:
    type: str
    weight: float = 1.0
    likelihood: str = "bernoulli"  # "bernoulli" (BCE with logits) or "gaussian" (MSE)
    sigma: float = 0.1  # the Gaussian likelihood's fixed standard deviation
    iw_samples: int = 64  # k for the importance-weighted bound nll_iw at the end; 0 skips it


class DecoderHead(nn.Module):
    """Decodes the encoder's sample `z` to logits shaped like the input."""

    def __init__(self, decoder: nn.Module) -> None:
        super().__init__()
        self.decoder = decoder

    def forward(self, encoding: Encoding) -> Tensor:
        return self.decoder(encoding.z)


@TASKS.register("reconstruction")
class Reconstruction(Task):
    """Reconstruct the input; per-image losses are summed over pixels (nats per image)."""

    Config = ReconstructionConfig

    directions = {
        "loss": "min",
        "bce": "min",
        "mse": "min",
        "kl": "min",
        "nelbo": "min",
        "nll_iw": "min",
    }

    def __init__(self, name: str, cfg: ReconstructionConfig) -> None:
        super().__init__(name, cfg.weight)
        check_choice(f"tasks.{name}.likelihood", cfg.likelihood, ("bernoulli", "gaussian"))
        self.cfg = cfg

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        if not info.is_image:
            raise ConfigError(
                f"tasks.{self.name}: reconstruction needs image data, "
                f"but dataset={info.name} gives vectors"
            )

    def build_head(self, backbone: Backbone) -> nn.Module:
        return DecoderHead(backbone.make_decoder())

    def target(self, batch: Batch) -> Tensor:
        return batch.inputs

    def log_likelihood(self, logits: Tensor, target: Tensor) -> Tensor:
        """log p(x | z) per example, summed over pixels."""
        if self.cfg.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        else:
            sigma = self.cfg.sigma
            nll = 0.5 * ((torch.sigmoid(logits) - target) / sigma) ** 2
            nll = nll + math.log(sigma) + 0.5 * math.log(2 * math.pi)
        return -nll.flatten(1).sum(dim=1)

    def per_example_loss(self, prediction: Tensor, batch: Batch) -> Tensor:
        return -self.log_likelihood(prediction, self.target(batch))

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        target = self.target(batch)
        nll = -self.log_likelihood(prediction, target)
        sums = {"loss": nll.sum()}
        if self.cfg.likelihood == "bernoulli":
            sums["bce"] = sums["loss"]  # the Bernoulli NLL is the BCE
        else:
            sums["mse"] = (torch.sigmoid(prediction) - target).pow(2).flatten(1).mean(1).sum()
        kl = encoding.kl
        if kl is not None:
            sums["kl"] = kl.sum()
            sums["nelbo"] = (nll + kl).sum()
        return sums

    def final_metric_sums(
        self, head: nn.Module, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        if encoding.mu is None or encoding.logvar is None or self.cfg.iw_samples < 1:
            return {}
        return {"nll_iw": self.importance_weighted_nll(head.decoder, encoding, batch).sum()}

    def importance_weighted_nll(self, decoder: nn.Module, encoding: Encoding, batch: Batch):
        """-log p(x) estimated with k importance samples from q(z|x) (Burda et al. 2016);
        an upper bound on the NLL that tightens as k grows, always ≤ nelbo in expectation."""
        mu, logvar, target = encoding.mu, encoding.logvar, self.target(batch)
        std = torch.exp(0.5 * logvar)
        log_weights = []
        for _ in range(self.cfg.iw_samples):
            eps = torch.randn_like(mu)
            z = mu + std * eps
            log_px_z = self.log_likelihood(decoder(z), target)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(1)
            log_weights.append(log_px_z + log_pz - log_qz)
        k = torch.tensor(float(self.cfg.iw_samples))
        return -(torch.logsumexp(torch.stack(log_weights), dim=0) - torch.log(k))
