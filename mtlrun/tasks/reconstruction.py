"""Reconstruction: a decoder head, a likelihood for images or vectors, and for a VAE its ELBO.

The task's loss is everything that belongs to it: the reconstruction's negative log-likelihood
and, when the code it decodes is a VAE's posterior sample, β·KL(q(z|x) ‖ N(0, I)), so the loss is
the β-VAE's negative ELBO. Weightings and gradient aggregators then scale the ELBO as a whole and
never change β relative to the likelihood (Higgins et al. 2017; Kingma & Welling 2014).

Likelihoods (`likelihood`), per example, summed over pixels or dimensions (nats per example):
- `bernoulli`: −log p(x|z) = BCE with logits; images only (pixels in [0, 1]). Metric `bce`.
- `gaussian`: −log N(x; μ, σ²), with σ fixed (`sigma`) or learned per input dimension
  (`learn_sigma`, starting at `sigma`). Metrics `gaussian_nll` and `mse`.
- `mse`: the squared error Σ (x − μ)², an autoencoder's plain objective and not a likelihood, so
  a VAE trained with it reports no `nelbo` or `nll_iw`. Metric `mse`.
The decoder outputs logits for images, so μ = sigmoid(output) keeps the mean in [0, 1]; for
vectors μ is the output itself. `mse` is always the mean over examples and dimensions.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.config import check_choice
from mtlrun.data import Batch, DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import TASKS
from mtlrun.schemas.task import LIKELIHOODS, ReconstructionConfig
from mtlrun.tasks.base import Task

LIKELIHOOD_METRIC = {"bernoulli": "bce", "gaussian": "gaussian_nll", "mse": "mse"}


class DecoderHead(nn.Module):
    """Decodes the encoder's sample `z` to an output shaped like the input; holds the learned
    log σ of a Gaussian likelihood with `learn_sigma`."""

    def __init__(self, decoder: nn.Module, log_sigma: Tensor | None = None) -> None:
        super().__init__()
        self.decoder = decoder
        self.log_sigma = None if log_sigma is None else nn.Parameter(log_sigma)

    def forward(self, encoding: Encoding) -> Tensor:
        return self.decoder(encoding.z)


@TASKS.register("reconstruction", schema=ReconstructionConfig)
class Reconstruction(Task):
    """Reconstruct the input; see the module docstring for the likelihoods and the ELBO."""

    reconstructs = True
    directions = {
        "loss": "min",
        "bce": "min",
        "gaussian_nll": "min",
        "mse": "min",
        "kl": "min",
        "nelbo": "min",
        "nll_iw": "min",
    }

    def __init__(self, cfg: ReconstructionConfig, name: str) -> None:
        super().__init__(name, cfg.weight)
        check_choice(f"tasks.{name}.likelihood", cfg.likelihood, LIKELIHOODS)
        if cfg.sigma <= 0:
            raise ConfigError(f"tasks.{name}.sigma={cfg.sigma} must be positive")
        if cfg.learn_sigma and cfg.likelihood != "gaussian":
            raise ConfigError(
                f"tasks.{name}.learn_sigma=true needs likelihood=gaussian, not {cfg.likelihood}"
            )
        self.cfg = cfg
        self.is_image = True
        self.kl_weight: float | None = None  # β when the decoded code is a VAE's, from `check`
        self.log_sigma: nn.Parameter | None = None  # the head's learned log σ (learn_sigma)

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        self.is_image = info.is_image
        self.kl_weight = backbone.kl_weight
        if self.cfg.likelihood == "bernoulli" and not info.is_image:
            raise ConfigError(
                f"tasks.{self.name}.likelihood=bernoulli needs pixels in [0, 1], but "
                f"dataset={info.name} gives real vectors; use tasks.{self.name}.likelihood="
                "gaussian or mse"
            )

    @property
    def is_elbo(self) -> bool:
        """Whether the loss is a (β-)VAE's negative ELBO: a prior and a likelihood."""
        return self.kl_weight is not None and self.cfg.likelihood != "mse"

    @property
    def primary_metric(self) -> str:
        return "nelbo" if self.is_elbo else LIKELIHOOD_METRIC[self.cfg.likelihood]

    def build_head(self, backbone: Backbone) -> nn.Module:
        log_sigma = None
        if self.cfg.learn_sigma:
            log_sigma = torch.full(backbone.input_shape, math.log(self.cfg.sigma))
        head = DecoderHead(backbone.make_decoder(), log_sigma)
        self.log_sigma = head.log_sigma
        return head

    def target(self, batch: Batch) -> Tensor:
        return batch.inputs

    def mean(self, output: Tensor) -> Tensor:
        """The reconstruction's mean: decoders output logits for images."""
        return torch.sigmoid(output) if self.is_image else output

    def negative_log_likelihood(self, output: Tensor, target: Tensor) -> Tensor:
        """−log p(x | z) per example (for `mse`, the squared error), summed over dimensions."""
        if self.cfg.likelihood == "bernoulli":
            nll = F.binary_cross_entropy_with_logits(output, target, reduction="none")
        elif self.cfg.likelihood == "gaussian":
            log_sigma = self.log_sigma if self.log_sigma is not None else math.log(self.cfg.sigma)
            log_sigma = torch.as_tensor(log_sigma, dtype=output.dtype, device=output.device)
            error = (self.mean(output) - target) * torch.exp(-log_sigma)
            nll = 0.5 * error.pow(2) + log_sigma + 0.5 * math.log(2 * math.pi)
        else:
            nll = (self.mean(output) - target).pow(2)
        return nll.flatten(1).sum(dim=1)

    def kl_term(self, encoding: Encoding) -> Tensor | None:
        """β·KL per example when the decoded code is a VAE's posterior sample."""
        kl = encoding.kl
        return None if kl is None or self.kl_weight is None else self.kl_weight * kl

    def per_example_loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        loss = self.negative_log_likelihood(prediction, self.target(batch))
        kl_term = self.kl_term(encoding)
        return loss if kl_term is None else loss + kl_term

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        target = self.target(batch)
        nll = self.negative_log_likelihood(prediction, target)
        kl_term = self.kl_term(encoding)
        sums = {"loss": (nll if kl_term is None else nll + kl_term).sum()}
        if self.cfg.likelihood != "mse":
            sums[LIKELIHOOD_METRIC[self.cfg.likelihood]] = nll.sum()
        if self.cfg.likelihood != "bernoulli":
            squared = (self.mean(prediction) - target).pow(2)
            sums["mse"] = squared.flatten(1).mean(1).sum()
        if kl_term is not None:
            sums["kl"] = encoding.kl.sum()
            if self.is_elbo:
                sums["nelbo"] = (nll + encoding.kl).sum()  # β = 1: the ELBO itself
        return sums

    def final_metric_sums(
        self, head: nn.Module, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        if encoding.mu is None or not self.is_elbo or self.cfg.iw_samples < 1:
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
            log_px_z = -self.negative_log_likelihood(decoder(z), target)
            log_pz = -0.5 * (z.pow(2) + math.log(2 * math.pi)).sum(1)
            log_qz = -0.5 * (eps.pow(2) + logvar + math.log(2 * math.pi)).sum(1)
            log_weights.append(log_px_z + log_pz - log_qz)
        k = torch.tensor(float(self.cfg.iw_samples))
        return -(torch.logsumexp(torch.stack(log_weights), dim=0) - torch.log(k))
