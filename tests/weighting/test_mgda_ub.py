"""MGDA-UB: the two-task min-norm weights of the (normalised) gradients on the representation,
applied to the raw losses."""

import math

import pytest
import torch

from mtlrun.errors import ConfigError
from tests.weighting.problems import SharedVector, make, train_records

G1, G2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 3.0])  # g₁·g₂ = −1: they conflict
VALUES = (2.0, 0.5)
# What each gradient is divided by: 1, ‖g_t‖, L_t, L_t·‖g_t‖ (‖g₁‖ = 1, ‖g₂‖ = √10).
NORMALISERS = {
    "none": (1.0, 1.0),
    "l2": (1.0, math.sqrt(10)),
    "loss": (2.0, 0.5),
    "loss+": (2.0, 0.5 * math.sqrt(10)),
}


def losses(h: torch.Tensor, g1: torch.Tensor = G1, g2: torch.Tensor = G2) -> list[torch.Tensor]:
    """L_t = g_t · h + c_t: gradient g_t on h, value c_t at θ = 0."""
    return [g1 @ h + VALUES[0], g2 @ h + VALUES[1]]


def two_task_min_norm(u1: torch.Tensor, u2: torch.Tensor) -> float:
    """argmin over a ∈ [0, 1] of ‖a·u₁ + (1 − a)·u₂‖²: ((u₂ − u₁)·u₂) / ‖u₁ − u₂‖², clipped."""
    return min(max(((u2 - u1) @ u2 / (u1 - u2).pow(2).sum()).item(), 0.0), 1.0)


@pytest.mark.parametrize("normalization", NORMALISERS)
def test_the_weights_are_the_min_norm_point_of_the_normalised_gradients(normalization):
    n1, n2 = NORMALISERS[normalization]
    u1, u2 = G1 / n1, G2 / n2
    a = two_task_min_norm(u1, u2)  # none 11/13, l2 1/2, loss 41/42.25, loss+ ≈ 0.884
    assert 0 < a < 1
    model = SharedVector([0.0, 0.0])
    weighting = make("mgda_ub", model, normalization=normalization)
    h = model.representation()
    total = weighting.backward(losses(h), model.output(h))
    assert weighting.logged() == pytest.approx({"t0/weight": a, "t1/weight": 1 - a}, abs=1e-5)
    # The raw losses are weighted, as in the authors' code: θ.grad = α₁·g₁ + α₂·g₂.
    assert torch.allclose(model.theta.grad, a * G1 + (1 - a) * G2, atol=1e-5)
    assert total.item() == pytest.approx(a * VALUES[0] + (1 - a) * VALUES[1], abs=1e-5)
    # The min-norm property, for the gradients the weights were solved on.
    assert (a * u1 + (1 - a) * u2).norm() < min(u1.norm(), u2.norm())


def test_a_gradient_inside_the_others_reach_takes_all_the_weight():
    """g₂ = [2, 1] has g₁·g₂ ≥ ‖g₁‖²: the formula clips to a = 1, so the step is g₁ alone."""
    model = SharedVector([0.0, 0.0])
    weighting = make("mgda_ub", model)
    h = model.representation()
    weighting.backward(losses(h, g2=torch.tensor([2.0, 1.0])), model.output(h))
    assert weighting.logged() == pytest.approx({"t0/weight": 1.0, "t1/weight": 0.0})
    assert torch.allclose(model.theta.grad, G1)


def test_the_auxiliary_loss_is_added_once_unweighted():
    model = SharedVector([0.0, 0.0])
    h = model.representation()
    auxiliary = torch.tensor([0.0, 3.0]) @ h
    make("mgda_ub", model).backward(losses(h), model.output(h, auxiliary))
    a = 11 / 13
    assert torch.allclose(model.theta.grad, a * G1 + (1 - a) * G2 + torch.tensor([0.0, 3.0]))


def test_a_task_not_trained_on_leaves_a_plain_backward_and_no_log():
    model = SharedVector([0.0, 0.0])
    weighting = make("mgda_ub", model)
    h = model.representation()
    trained, frozen = losses(h)
    total = weighting.backward([trained, frozen.detach()], model.output(h))
    assert torch.equal(model.theta.grad, G1)
    assert total.item() == pytest.approx(VALUES[0])
    assert weighting.logged() == {}


def test_the_default_normalisation_is_the_authors_multimnist_none_and_others_are_refused():
    assert make("mgda_ub", SharedVector([0.0])).normalization == "none"
    with pytest.raises(ConfigError, match="^weighting.normalization='l1' is not known; choose one"):
        make("mgda_ub", SharedVector([0.0]), normalization="l1")


def test_a_run_logs_convex_weights(run_dir):
    records = train_records("mgda_ub", run_dir)
    for record in records:
        weights = record["train/reconstruction/weight"] + record["train/class/weight"]
        assert weights == pytest.approx(1.0, abs=1e-4)
    assert 0 < records[-1]["train/class/weight"] < 1
