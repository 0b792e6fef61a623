"""Task losses and metrics match their definitions."""

import math

import pytest
import torch
import torch.nn.functional as F

from mtlrun.backbones import Backbone, Encoding
from mtlrun.data import Batch, DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.tasks.classification import Classification, ClassificationConfig
from mtlrun.tasks.reconstruction import Reconstruction, ReconstructionConfig


def test_bernoulli_reconstruction_is_bce_summed_over_pixels():
    task = Reconstruction(ReconstructionConfig(type="reconstruction"), "reconstruction")
    x = torch.rand(3, 1, 4, 4)
    logits = torch.randn(3, 1, 4, 4)
    batch = Batch(x, {})
    expected = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 3
    assert torch.allclose(task.loss(logits, Encoding(x, x), batch), expected)


def test_bernoulli_loss_stays_fp32_under_bf16_autocast():
    task = Reconstruction(ReconstructionConfig(type="reconstruction"), "reconstruction")
    logits = (torch.randn(2, 1, 28, 28) * 5).bfloat16().requires_grad_(True)
    x = torch.rand(2, 1, 28, 28)
    with torch.autocast("cpu", torch.bfloat16):
        loss = task.loss(logits, Encoding(x, x), Batch(x, {}))
    assert loss.dtype == torch.float32
    expected = F.binary_cross_entropy_with_logits(logits.float(), x, reduction="sum") / 2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert logits.grad.dtype == torch.bfloat16


def vae_task(beta: float, **options: object) -> Reconstruction:
    """A reconstruction task checked against a VAE backbone whose KL weight is β."""
    task = Reconstruction(ReconstructionConfig(type="reconstruction", **options), "reconstruction")
    info = DatasetInfo("d", (1, 4, 4))
    task.check(info, Backbone((1, 4, 4), [], torch.nn.Identity(), 2, lambda: None, beta), [task])
    return task


def test_a_vae_reconstruction_loss_is_the_beta_weighted_negative_elbo():
    task = vae_task(beta=4.0)
    x = torch.rand(3, 1, 4, 4)
    logits = torch.randn(3, 1, 4, 4)
    mu, logvar = torch.randn(3, 2), torch.randn(3, 2)
    encoding = Encoding(mu, mu, mu, logvar)
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum((1, 2, 3))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar).sum(1)
    assert torch.allclose(task.loss(logits, encoding, Batch(x, {})), (bce + 4.0 * kl).mean())
    sums = task.metric_sums(logits, encoding, Batch(x, {}))
    assert torch.allclose(sums["loss"], (bce + 4.0 * kl).sum())
    assert torch.allclose(sums["nelbo"], sums["bce"] + sums["kl"])  # the ELBO itself: β = 1
    assert torch.allclose(sums["kl"], kl.sum())
    assert task.primary_metric == "nelbo"


def test_an_autoencoder_reconstruction_has_no_kl_and_its_likelihood_is_primary():
    task = Reconstruction(ReconstructionConfig(type="reconstruction"), "reconstruction")
    x = torch.rand(3, 1, 4, 4)
    sums = task.metric_sums(torch.randn(3, 1, 4, 4), Encoding(x, x), Batch(x, {}))
    assert set(sums) == {"loss", "bce"}
    assert task.primary_metric == "bce"


def test_gaussian_reconstruction_reports_its_nll_and_mse():
    cfg = ReconstructionConfig(type="reconstruction", likelihood="gaussian", sigma=1.0)
    task = Reconstruction(cfg, "reconstruction")
    x = torch.rand(2, 1, 3, 3)
    logits = torch.randn(2, 1, 3, 3)
    sums = task.metric_sums(logits, Encoding(x, x), Batch(x, {}))
    mse = (torch.sigmoid(logits) - x).pow(2).mean()
    assert torch.allclose(sums["mse"] / 2, mse)
    expected_nll = 0.5 * (torch.sigmoid(logits) - x).pow(2).sum() + 18 * 0.5 * math.log(2 * math.pi)
    assert torch.allclose(sums["loss"], expected_nll)
    assert torch.equal(sums["gaussian_nll"], sums["loss"])
    assert task.primary_metric == "gaussian_nll"


def test_importance_weighted_bound_is_tighter_than_the_elbo():
    """With k samples the IWAE bound is ≤ the ELBO in expectation (Burda et al. 2016)."""
    torch.manual_seed(0)
    decoder = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Unflatten(1, (1, 4, 4)))
    x = (torch.rand(256, 1, 4, 4) > 0.5).float()
    mu, logvar = 0.5 * torch.randn(256, 2), torch.full((256, 2), -1.0)
    encoding = Encoding(mu, mu + torch.randn_like(mu) * 0.6, mu, logvar)
    single = Reconstruction(ReconstructionConfig(type="reconstruction", iw_samples=1), "r")
    many = Reconstruction(ReconstructionConfig(type="reconstruction", iw_samples=64), "r")
    batch = Batch(x, {})
    elbo_estimate = single.importance_weighted_nll(decoder, encoding, batch).mean()
    iw_estimate = many.importance_weighted_nll(decoder, encoding, batch).mean()
    nelbo = (single.negative_log_likelihood(decoder(encoding.z), x) + encoding.kl).mean()
    assert iw_estimate < elbo_estimate
    assert abs(elbo_estimate - nelbo) / nelbo < 0.05


def test_classification_counts_correct_predictions():
    task = Classification(ClassificationConfig(type="classification"), "digit")
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 0.0]])
    batch = Batch(torch.zeros(3, 1), {"digit": torch.tensor([0, 1, 1])})
    sums = task.metric_sums(logits, Encoding(logits, logits), batch)
    assert sums["acc"].item() == 2
    assert torch.allclose(sums["nll"], F.cross_entropy(logits, batch.targets["digit"]) * 3)
    assert task.directions["acc"] == "max" and task.directions["nll"] == "min"


def vector_task(**options: object) -> Reconstruction:
    task = Reconstruction(ReconstructionConfig(type="reconstruction", **options), "reconstruction")
    task.check(DatasetInfo("vectors", (3,)), Backbone((3,), [], torch.nn.Identity(), 2, None), [])
    return task


def test_vector_reconstruction_is_a_gaussian_on_the_decoder_output_itself():
    task = vector_task(likelihood="gaussian", sigma=0.5)
    x = torch.tensor([[1.0, -2.0, 0.5]])
    output = torch.tensor([[0.0, -1.0, 0.5]])  # no sigmoid: vectors are not pixels
    squared = torch.tensor([1.0, 1.0, 0.0])
    expected = (0.5 * squared / 0.25 + math.log(0.5) + 0.5 * math.log(2 * math.pi)).sum()
    sums = task.metric_sums(output, Encoding(x, x), Batch(x, {}))
    assert torch.allclose(sums["gaussian_nll"], expected)
    assert torch.allclose(sums["mse"], torch.tensor(2.0 / 3))


def test_a_learned_sigma_is_a_parameter_of_the_head_and_enters_the_likelihood():
    task = vector_task(likelihood="gaussian", sigma=2.0, learn_sigma=True)
    backbone = Backbone((3,), [], torch.nn.Identity(), 3, lambda: torch.nn.Identity())
    head = task.build_head(backbone)
    assert torch.allclose(head.log_sigma, torch.full((3,), math.log(2.0)))
    with torch.no_grad():
        head.log_sigma.copy_(torch.log(torch.tensor([1.0, 2.0, 4.0])))
    x, output = torch.zeros(1, 3), torch.ones(1, 3)
    loss = task.loss(output, Encoding(x, x), Batch(x, {}))
    sigma = torch.tensor([1.0, 2.0, 4.0])
    expected = (0.5 / sigma**2 + sigma.log() + 0.5 * math.log(2 * math.pi)).sum()
    assert torch.allclose(loss, expected)
    loss.backward()
    assert torch.allclose(head.log_sigma.grad, 1 - 1 / sigma**2)  # d/dlogσ (e^{-2s}/2 + s)


def test_mse_reconstruction_sums_squared_errors_and_is_not_an_elbo():
    task = vector_task(likelihood="mse")
    task.kl_weight = 1.0  # even on a VAE's code: squared error is no likelihood
    x = torch.tensor([[1.0, 2.0, 3.0]])
    mu, logvar = torch.zeros(1, 2), torch.zeros(1, 2)
    sums = task.metric_sums(torch.zeros(1, 3), Encoding(mu, mu, mu, logvar), Batch(x, {}))
    assert torch.allclose(sums["loss"], torch.tensor(14.0))  # 1 + 4 + 9, KL of N(0, I) is 0
    assert torch.allclose(sums["mse"], torch.tensor(14.0 / 3))
    assert "nelbo" not in sums and task.primary_metric == "mse"


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"likelihood": "bernoulli"}, "likelihood=bernoulli needs pixels in \\[0, 1\\]"),
        ({"likelihood": "poisson"}, "likelihood='poisson' is not known"),
        ({"likelihood": "mse", "learn_sigma": True}, "learn_sigma=true needs likelihood=gauss"),
        ({"likelihood": "gaussian", "sigma": 0.0}, "sigma=0.0 must be positive"),
    ],
)
def test_impossible_likelihoods_are_config_errors(options, words):
    with pytest.raises(ConfigError, match=words):
        vector_task(**options)
