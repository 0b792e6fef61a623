"""Concatenated codes: one autoencoder per task, every head reads all codes."""

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from mtlrun.backbones import BACKBONES
from mtlrun.data import DatasetInfo, TargetInfo
from mtlrun.errors import ConfigError
from mtlrun.sharing import SHARING
from mtlrun.tasks.classification import Classification, ClassificationConfig
from mtlrun.train import build, train
from tests.conftest import compose_config
from tests.sharing import SMALL, assert_learns, config_error, same_parameters

CONCAT = [*SMALL, "tasks=[reconstruction,class]", "sharing=concat"]


def test_one_autoencoder_per_task_and_heads_read_all_codes():
    model = build(compose_config(CONCAT)).model
    assert sorted(model.networks) == sorted(model.decoders) == ["class", "reconstruction"]
    assert model.networks["class"] is not model.networks["reconstruction"]
    assert model.heads["class"].net[0].in_features == 2 * 8  # T × code_dim
    assert model.heads["reconstruction"].decoder[0].in_features == 2 * 8
    x = torch.rand(4, 1, 28, 28)
    assert model.encode("class", x).features.shape == (4, 16)
    assert [s.shape for s in model(x).shared] == [(4, 16)]


def test_the_auxiliary_loss_adds_each_reconstruction_and_the_relatedness_of_the_codes():
    model = build(compose_config([*CONCAT, "sharing.penalty=0.5"])).model
    x = torch.rand(4, 1, 28, 28)
    own, _ = model.codes(x)
    bce = sum(
        F.binary_cross_entropy_with_logits(model.decoders[name](code.z), x, reduction="sum") / 4
        for name, code in own.items()
    )
    a, b = own["reconstruction"].features, own["class"].features
    relatedness = 0.5 * (a - b).pow(2).sum(1).mean()
    assert torch.allclose(model(x).auxiliary_loss, bce + relatedness, rtol=1e-5)


def test_it_trains_and_draws_image_grids(run_dir):
    # The codes are learnt mostly for reconstruction: the classifier needs a few more epochs.
    train(compose_config([*CONCAT, "trainer.epochs=5"]), run_dir)
    assert_learns(run_dir)
    assert (run_dir / "images" / "recon_e005.png").is_file()
    assert (run_dir / "images" / "interpolation.png").is_file()


def test_vector_data_is_a_config_error():
    info = DatasetInfo("vectors", (12,), {"class": TargetInfo(num_classes=3)})
    backbone_node = OmegaConf.create({"name": "dense_ae", "hidden_dims": [8], "latent_dim": 4})
    task = Classification("class", ClassificationConfig(type="classification"))
    task.num_classes = 3
    with pytest.raises(ConfigError, match="sharing=concat .* vectors of shape \\(12,\\)"):
        SHARING.get("concat")(
            OmegaConf.create({"name": "concat"}),
            lambda: BACKBONES.get("dense_ae")(backbone_node, info),
            [task],
        )


def test_a_vae_samples_the_concatenated_prior(run_dir):
    """Each autoencoder's KL pulls its code towards N(0, I), so the concatenated code's prior is
    N(0, I) of T × latent_dim: the sample grid decodes codes of that width."""
    from PIL import Image

    from mtlrun.train import train

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
