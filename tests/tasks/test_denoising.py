"""Denoising: the model sees corrupted inputs, the targets stay clean, and it learns to clean."""

import pytest
import torch

from mtlrun.backbones import Encoding
from mtlrun.data import Batch
from mtlrun.errors import ConfigError
from mtlrun.experiment import build
from mtlrun.tasks.denoising import Denoising, DenoisingConfig
from mtlrun.tasks.reconstruction import Reconstruction
from tests.conftest import TINY, compose_config


def denoising(**fields):
    return Denoising(DenoisingConfig(type="denoising", **fields), "denoising")


def test_gaussian_noise_is_clipped_to_the_pixel_range():
    x = torch.rand(64, 1, 8, 8)
    noisy = denoising(noise_std=0.5).corrupt(x)
    assert 0 <= noisy.min() and noisy.max() <= 1
    assert 0.2 < (noisy - x).abs().mean() < 0.5


def test_masking_zeroes_pixels_with_the_given_probability():
    x = torch.rand(64, 1, 16, 16) * 0.5 + 0.5  # no pixel is 0 before masking
    masked = denoising(noise_std=0.0, mask_prob=0.25).corrupt(x)
    zeroed = masked == 0
    assert abs(zeroed.float().mean().item() - 0.25) < 0.02
    assert torch.equal(masked[~zeroed], x[~zeroed])


def test_corruption_repeats_under_the_seed():
    x = torch.rand(4, 1, 8, 8)
    task = denoising(mask_prob=0.1)
    torch.manual_seed(0)
    first = task.corrupt(x)
    torch.manual_seed(0)
    assert torch.equal(task.corrupt(x), first)


def test_the_loss_is_reconstructions_against_the_clean_images():
    task = denoising()
    assert isinstance(task, Reconstruction)
    x = torch.rand(3, 1, 4, 4)
    logits = torch.randn(3, 1, 4, 4)
    plain = Reconstruction(DenoisingConfig(type="reconstruction"), "r")
    code = Encoding(x, x)
    assert torch.equal(
        task.loss(logits, code, Batch(x, {})), plain.loss(logits, code, Batch(x, {}))
    )


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"noise_std": 0.0}, "nothing is corrupted"),
        ({"mask_prob": 1.0}, "mask_prob=1.0 must be in"),
        ({"noise_std": -1.0}, "noise_std=-1.0 must be at least 0"),
    ],
)
def test_impossible_corruptions_are_config_errors(fields, words):
    with pytest.raises(ConfigError, match=words):
        denoising(**fields)


@pytest.mark.slow  # a long training, to show that it learns
def test_the_model_learns_to_denoise():
    """Trained on corrupted synthetic images against the clean ones, the model's output is
    much closer to the clean image than its corrupted input was, and the loss falls."""
    cfg = compose_config(
        [
            *TINY,
            "backbone=dense_ae",
            "~task@tasks.reconstruction",
            "+task@tasks.denoising=denoising",
            "tasks.denoising.noise_std=0.3",
            "dataset.noise=0.02",
            "optim.lr=2e-3",
        ]
    )
    experiment = build(cfg)
    model, optimizer, (task,) = experiment.model, experiment.optimizer, experiment.tasks
    clean = experiment.data.val.head(128)
    torch.manual_seed(0)
    corrupted = experiment.model_inputs(clean.inputs)
    assert (corrupted - clean.inputs).abs().mean() > 0.1  # the model sees corrupted images

    def val_loss() -> torch.Tensor:
        with torch.no_grad():
            output = model(corrupted)
            return task.loss(output.predictions["denoising"], output.encodings["denoising"], clean)

    before = val_loss()
    for _ in range(15):
        for batch in experiment.data.train.batches(64, torch.Generator().manual_seed(0)):
            output = model(experiment.model_inputs(batch.inputs))
            loss = task.loss(output.predictions["denoising"], output.encodings["denoising"], batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    assert val_loss() < 0.8 * before
    with torch.no_grad():
        cleaned = torch.sigmoid(model(corrupted).predictions["denoising"])
    input_error = (corrupted - clean.inputs).pow(2).mean()
    assert (cleaned - clean.inputs).pow(2).mean() < 0.3 * input_error
