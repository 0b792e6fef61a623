"""FAMO and the scale-invariant weighting: the log-loss methods, checked on losses whose values
and gradients are known (L_t = k_t·exp(g_t·θ) at θ = 0: value k_t, gradient k_t·g_t)."""

import copy

import pytest
import torch
import torch.nn.functional as F

from mtlrun.errors import TrainingDiverged
from tests.weighting.problems import SharedVector, make

GRADIENTS = torch.tensor([[1.0, 0.0], [-2.0, 1.0]])


def step(name: str, scales: list[float], **options: object):
    """The gradient `name` puts on θ for losses k_t·exp(g_t·θ) at θ = 0, and the weighting."""
    model = SharedVector([0.0, 0.0])
    weighting = make(name, model, **options)
    h = model.representation()
    losses = [k * torch.exp(g @ h) for k, g in zip(scales, GRADIENTS, strict=True)]
    weighting.backward(losses, model.output(h))
    return model.theta.grad, weighting


@pytest.mark.parametrize("name", ["scale_invariant", "famo"])
def test_a_task_loss_multiplied_by_a_constant_leaves_the_update_unchanged(name):
    # Σ_t ∇ log L_t = Σ_t g_t, whatever the k_t; FAMO's first step is the same, normalised by c.
    reference, _ = step(name, [1.0, 1.0])
    scaled, _ = step(name, [1.0, 100.0])
    if name == "scale_invariant":
        torch.testing.assert_close(reference, GRADIENTS.sum(dim=0))
        torch.testing.assert_close(scaled, reference)
    else:
        torch.testing.assert_close(F.normalize(scaled, dim=0), F.normalize(reference, dim=0))


def test_scale_invariant_refuses_a_loss_that_is_not_positive_in_one_line():
    _, weighting = step("scale_invariant", [1.0, -0.5])
    with pytest.raises(TrainingDiverged, match="task t1's loss was 0 or below in 1 steps"):
        weighting.logged()


def test_famo_shifts_weight_to_the_task_whose_log_loss_fell_least():
    _, famo = step("famo", [2.0, 2.0])
    famo.after_step(lambda: [torch.tensor(1.0), torch.tensor(1.8)])
    # δ = log L − log L' per task; the logits' gradient is ∂softmax/∂ξ ᵀ δ, and Adam's first
    # step moves each logit by the learning rate against its sign (the weight decay acts on
    # logits of 0 first, so not at all).
    decrease = torch.log(torch.tensor([2.0, 2.0])) - torch.log(torch.tensor([1.0, 1.8]))
    z = torch.tensor([0.5, 0.5])
    direction = (torch.diag(z) - torch.outer(z, z)) @ decrease
    torch.testing.assert_close(famo.logits.detach(), -0.025 * direction.sign(), rtol=1e-4, atol=0)
    weights = F.softmax(famo.logits.detach(), dim=0)
    assert weights[1] > 0.5  # task 1 fell from 2 to 1.8 only: it gains weight


def test_famo_keeps_its_logit_optimizer_in_checkpoints():
    _, famo = step("famo", [2.0, 2.0])
    famo.after_step(lambda: [torch.tensor(1.0), torch.tensor(1.8)])
    state = copy.deepcopy(famo.state_dict())  # as a checkpoint holds it: no shared tensors
    _, resumed = step("famo", [2.0, 2.0])
    resumed.load_state_dict(state)
    for weighting in (famo, resumed):
        weighting.backward(
            [torch.tensor(2.0, requires_grad=True), torch.tensor(2.0, requires_grad=True)],
            SharedVector([0.0, 0.0]).output(torch.zeros(2)),
        )
        weighting.after_step(lambda: [torch.tensor(1.5), torch.tensor(1.9)])
    torch.testing.assert_close(resumed.logits, famo.logits, rtol=0, atol=0)
