"""Concatenated codes: one autoencoder per task, every head reads all codes."""

import pytest
import torch
import torch.nn.functional as F

from mtlrun.checkpoint import load_checkpoint
from mtlrun.data import Batch
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from mtlrun.runfolder import read_json
from tests.conftest import compose_config
from tests.sharing import SMALL, assert_learns, config_error, same_parameters

CONCAT = [*SMALL, "+task@tasks.class=classification", "sharing=concat"]


def test_one_autoencoder_per_task_and_heads_read_all_codes():
    model = build(compose_config(CONCAT)).model
    assert sorted(model.networks) == sorted(model.decoders) == ["class", "reconstruction"]
    assert model.networks["class"] is not model.networks["reconstruction"]
    assert model.heads["class"].net[0].in_features == 2 * 8  # T × code_dim
    assert model.heads["reconstruction"].decoder[0].in_features == 2 * 8
    x = torch.rand(4, 1, 28, 28)
    assert model.encode("class", x).features.shape == (4, 16)
    assert [s.shape for s in model(x).shared] == [(4, 16)]


def test_each_autoencoders_loss_is_its_tasks_and_only_the_relatedness_is_auxiliary():
    model = build(compose_config([*CONCAT, "sharing.penalty=0.5"])).model
    x = torch.rand(4, 1, 28, 28)
    output = model(x)
    (code,) = output.shared  # the concatenated code, [reconstruction | class]
    parts = dict(zip(model.networks, code.chunk(2, dim=1), strict=True))
    for name, part in parts.items():
        bce = F.binary_cross_entropy_with_logits(model.decoders[name](part), x, reduction="none")
        assert torch.allclose(output.own_losses[name], bce.sum((1, 2, 3)), rtol=1e-5)
    relatedness = 0.5 * (parts["reconstruction"] - parts["class"]).pow(2).sum(1).mean()
    assert torch.allclose(output.auxiliary_loss, relatedness, rtol=1e-5)


def test_a_vaes_sample_and_kl_come_from_the_shared_cut():
    """Everything a task reads passes through [μ, log σ²] of the concatenation: the gradient of
    every task loss reaches the encoders only through it (what aggregators need)."""
    experiment = build(compose_config([*CONCAT, "backbone=vae", "backbone.hidden_dims=[16]"]))
    x = torch.rand(4, 1, 28, 28)
    output = experiment.model(x)
    mu, logvar = output.shared
    losses = experiment.task_losses(output, Batch(x, {"class": torch.zeros(4, dtype=torch.long)}))
    encoders = [p for network in experiment.model.networks.values() for p in network.parameters()]
    for loss in losses:
        through_cut = torch.autograd.grad(loss, [mu, logvar], retain_graph=True)
        direct = torch.autograd.grad(
            [mu, logvar], encoders, through_cut, retain_graph=True, allow_unused=True
        )
        total = torch.autograd.grad(loss, encoders, retain_graph=True, allow_unused=True)
        for a, b in zip(direct, total, strict=True):
            assert (a is None and b is None) or torch.allclose(a, b, atol=1e-6)


def test_it_trains_and_draws_image_grids(run_dir):
    # The codes are learnt mostly for reconstruction: the classifier needs a few more epochs.
    train(compose_config([*CONCAT, "trainer.epochs=5"]), run_dir)
    assert_learns(run_dir)
    assert (run_dir / "images" / "recon_e005.png").is_file()
    assert (run_dir / "images" / "interpolation.png").is_file()


def test_it_trains_on_vectors_with_per_task_autoencoders(run_dir):
    """On synthetic_regression: two regression tasks, each with its own autoencoder of the input
    vectors (squared error without a reconstruction task), both heads on both codes."""
    cfg = compose_config(
        [
            "dataset=synthetic_regression",
            "sharing=concat",
            "backbone=dense_ae",
            "backbone.hidden_dims=[32]",
            "backbone.latent_dim=4",
            "~task@tasks.reconstruction",
            "+task@tasks.y0=regression",
            "+task@tasks.y1=regression",
            "trainer.epochs=3",
            "trainer.progress=false",
            "device=cpu",
        ]
    )
    train(cfg, run_dir)
    metrics = read_json(run_dir / "summary.json")["metrics"]
    assert metrics["test/y0/mse"] < 1.0  # a unit-variance target: below predicting its mean
    # Each autoencoder's loss is its squared error Σ (x − x̂)² on the vectors, x̂ decoded from
    # its task's part of the code: here, the final model's mean over the test split.
    experiment = build(cfg)
    model = experiment.model
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    model.eval()
    x = experiment.data.test.inputs
    with torch.no_grad():
        (code,) = model(x).shared
        parts = dict(zip(model.networks, code.chunk(2, dim=1), strict=True))
        for name in ("y0", "y1"):
            error = (model.decoders[name](parts[name]) - x).pow(2).sum(1).mean().item()
            assert metrics[f"test/{name}/autoencoder_loss"] == pytest.approx(error, rel=1e-5)


def test_a_vae_samples_the_concatenated_prior(run_dir):
    """Each autoencoder's KL pulls its code towards N(0, I), so the concatenated code's prior is
    N(0, I) of T × latent_dim: the sample grid decodes codes of that width."""
    from PIL import Image

    from mtlrun.lifecycle import train

    train(
        compose_config([*CONCAT, "backbone=vae", "backbone.hidden_dims=[64]", "trainer.epochs=1"]),
        run_dir,
    )
    assert Image.open(run_dir / "images" / "samples_e001.png").size == (8 * 30 + 2, 8 * 30 + 2)


def test_a_negative_penalty_is_a_config_error():
    assert "sharing.penalty=-0.1 must be at least 0" in config_error(
        [*CONCAT, "sharing.penalty=-0.1"]
    )


def test_the_last_shared_layers_are_every_autoencoders_latent_layer():
    model = build(compose_config(CONCAT)).model
    latents = [*model.networks["reconstruction"].latent.parameters()]
    latents += model.networks["class"].latent.parameters()
    assert same_parameters(model.last_shared_parameters(), latents)
    assert model.shares_representation
