"""Task losses and metrics match their definitions."""

import math

import torch
import torch.nn.functional as F

from mtlrun.backbones import Encoding
from mtlrun.data import Batch
from mtlrun.tasks.classification import Classification, ClassificationConfig
from mtlrun.tasks.reconstruction import Reconstruction, ReconstructionConfig


def test_bernoulli_reconstruction_is_bce_summed_over_pixels():
    task = Reconstruction("reconstruction", ReconstructionConfig(type="reconstruction"))
    x = torch.rand(3, 1, 4, 4)
    logits = torch.randn(3, 1, 4, 4)
    batch = Batch(x, {})
    expected = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 3
    assert torch.allclose(task.loss(logits, batch), expected)


def test_bernoulli_loss_stays_fp32_under_bf16_autocast():
    task = Reconstruction("reconstruction", ReconstructionConfig(type="reconstruction"))
    logits = (torch.randn(2, 1, 28, 28) * 5).bfloat16().requires_grad_(True)
    x = torch.rand(2, 1, 28, 28)
    with torch.autocast("cpu", torch.bfloat16):
        loss = task.loss(logits, Batch(x, {}))
    assert loss.dtype == torch.float32
    expected = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="sum") / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16


def test_vae_metrics_add_up_to_the_nelbo():
    task = Reconstruction("reconstruction", ReconstructionConfig(type="reconstruction"))
    x = torch.rand(3, 1, 4, 4)
    logits = torch.randn(3, 1, 4, 4)
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2)
    encoding = Encoding(mu, mu, mu, logvar)
    sums = task.metric_sums(logits, encoding, Batch(x, {}))
    assert torch.allclose(sums["nelbo"], sums["bce"] + sums["kl"])
    assert torch.allclose(sums["kl"], encoding.kl.sum())


def test_gaussian_reconstruction_reports_mse():
    cfg = ReconstructionConfig(type="reconstruction", likelihood="gaussian", sigma=1.0)
    task = Reconstruction("reconstruction", cfg)
    x = torch.rand(2, 1, 3, 3)
    logits = torch.randn(2, 1, 3, 3)
    sums = task.metric_sums(logits, Encoding(x, x), Batch(x, {}))
    mse = (torch.sigmoid(logits) - x).pow(2).mean()
    assert torch.allclose(sums["mse"] / 2, mse)
    expected_nll = 0.5 * (torch.sigmoid(logits) - x).pow(2).sum() + 18 * 0.5 * math.log(2 * math.pi)
    assert torch.allclose(sums["loss"], expected_nll)


def test_importance_weighted_bound_is_tighter_than_the_elbo():
    """With k samples the IWAE bound is ≤ the ELBO in expectation (Burda et al. 2016)."""
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Unflatten(1, (1, 4, 4)))
    x = (torch.rand(256, 1, 4, 4) > 0.5).float()
    mu, logvar = 0.5 * torch.randn(256, 2), torch.full((256, 2), -1.0)
    encoding = Encoding(mu, mu + torch.randn_like(mu) * 0.6, mu, logvar)
    single = Reconstruction("r", ReconstructionConfig(type="reconstruction", iw_samples=1))
    many = Reconstruction("r", ReconstructionConfig(type="reconstruction", iw_samples=64))
    batch = Batch(x, {})
    elbo_estimate = single.importance_weighted_nll(decoder, encoding, batch).mean()
    iw_estimate = many.importance_weighted_nll(decoder, encoding, batch).mean()
    nelbo = (single.per_example_loss(decoder(encoding.z), batch) + encoding.kl).mean()
    assert iw_estimate < elbo_estimate
    assert abs(elbo_estimate - nelbo) / nelbo < 0.05


def test_classification_counts_correct_predictions():
    task = Classification("digit", ClassificationConfig(type="classification"))
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    batch = Batch(torch.zeros(3, 1), {"digit": torch.tensor([0, 1, 1])})
    sums = task.metric_sums(logits, Encoding(logits, logits), batch)
    assert sums["acc"].item() == 2
    assert torch.allclose(sums["nll"], F.cross_entropy(logits, batch.targets["digit"]) * 3)
    assert task.directions["acc"] == "max" and task.directions["nll"] == "min"
