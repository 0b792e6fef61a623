"""Every weighting scales a VAE reconstruction's ELBO as a whole: the gradient it sends into the
encoder keeps the ratio of the likelihood part to the KL part at β, whatever weight the task
gets. (With β·KL outside the task loss, a weight w would make the effective β equal β / w.)"""

import pytest
import torch

from mtlrun.data import Batch
from mtlrun.experiment import build
from mtlrun.parts import WEIGHTINGS
from tests.conftest import TINY, compose_config

BETA = 2.0
LATENT = 4


def vae_experiment(weighting: str):
    return build(
        compose_config(
            [
                *TINY,
                "backbone=vae",
                f"backbone.beta={BETA}",
                "backbone.hidden_dims=[32]",
                f"backbone.latent_dim={LATENT}",
                "+task@tasks.class=classification",
                "tasks.reconstruction.weight=0.3",  # fixed: a weight far from 1
                f"weighting={weighting}",
            ]
        )
    )


def forward(experiment, batch: Batch, seed: int):
    torch.manual_seed(seed)  # the same posterior sample each time
    output = experiment.model(batch.inputs)
    return output, experiment.task_losses(output, batch)


@pytest.mark.parametrize("weighting", WEIGHTINGS.names)
def test_the_encoder_gradient_keeps_the_likelihood_to_kl_ratio(weighting):
    experiment = vae_experiment(weighting)
    model, method = experiment.model, experiment.weighting
    batches = list(experiment.data.train.batches(64, torch.Generator().manual_seed(0)))
    # Move the learnt and loss-history weights away from their starting values first.
    method.end_epoch([100.0, 2.0])
    method.end_epoch([60.0, 1.9])
    for step, batch in enumerate(batches[:4]):
        output, losses = forward(experiment, batch, step)
        experiment.optimizer.zero_grad()
        method.backward(losses, output)
        experiment.optimizer.step()

    batch = batches[4]
    output, losses = forward(experiment, batch, 99)
    experiment.optimizer.zero_grad()
    method.backward(losses, output)
    # The rows of the latent layer that compute log σ²: only the reconstruction task reaches
    # them (the classifier reads μ), through the sample z (likelihood) and the KL.
    weight = model.backbone.latent.linear.weight
    applied = weight.grad[LATENT:]

    output, _ = forward(experiment, batch, 99)
    encoding = output.encodings["reconstruction"]
    reconstruction = experiment.tasks[0]
    nll = reconstruction.negative_log_likelihood(output.predictions["reconstruction"], batch.inputs)
    likelihood_part = torch.autograd.grad(nll.mean(), weight, retain_graph=True)[0][LATENT:]
    kl_part = torch.autograd.grad(encoding.kl.mean(), weight)[0][LATENT:]

    # applied = a·likelihood_part + b·kl_part: fit a and b, then b / a is the effective β.
    parts = torch.stack([likelihood_part.flatten(), kl_part.flatten()], dim=1).double()
    (a, b), *_ = torch.linalg.lstsq(parts, applied.flatten().double().unsqueeze(1))
    a, b = a.item(), b.item()
    if applied.abs().max() == 0:  # the method gave the task no weight (MGDA may): nor its KL
        return
    assert a > 0
    assert b / a == pytest.approx(BETA, rel=1e-2)
    fitted = parts @ torch.tensor([a, b], dtype=torch.float64)
    torch.testing.assert_close(fitted, applied.flatten().double(), rtol=1e-3, atol=1e-6)
