"""Reconstruction: a decoder head, Bernoulli or Gaussian likelihood, ELBO terms for VAEs."""

import math
from dataclasses import dataclass
from typing import Any

import torch
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


class BernoulliNLL(torch.autograd.Function):
    """-log p(x | logits) for Bernoulli pixels, summed over all but the batch dimension:
    the same numbers as `binary_cross_entropy_with_logits(...).flatten(1).sum(1)`.

    Written out because PyTorch's CPU kernels for log-sigmoid and log1p are scalar loops: on
    a VAE's 128×784 batch they took 0.4 of ~5 ms per step, and most of the k = 64 samples of
    the final importance-weighted bound. Here every op is vectorised, with the gradient
    `sigmoid(logits) - x` in one pass instead of autograd's chain through log-sigmoid.
    """

    @staticmethod
    def forward(ctx: Any, logits: Tensor, target: Tensor) -> Tensor:
        logits, target = logits.float(), target.float()
        ctx.save_for_backward(logits, target)
        # softplus(z) - x z, with softplus(z) = max(z, 0) + log(1 + exp(-|z|)) stable for any z.
        # 1 + exp(-|z|) lies in (1, 2], where log is as accurate as log1p to within 1e-7.
        nll = logits.abs().neg_().exp_().add_(1).log_().add_(logits.clamp(min=0))
        return nll.sub_(logits * target).flatten(1).sum(1)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        logits, target = ctx.saved_tensors
        grad = grad.view(-1, *[1] * (logits.dim() - 1))
        grad_logits = grad_target = None
        if ctx.needs_input_grad[0]:
            grad_logits = torch.sigmoid(logits).sub_(target).mul_(grad)
        if ctx.needs_input_grad[1]:
            grad_target = logits.neg() * grad
        return grad_logits, grad_target


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
            return -BernoulliNLL.apply(logits, target)
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
