"""Optimiser parameter groups: parameters a model trains at a multiple of the learning rate."""

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn

from mtlrun.optim import build_optimizer


def test_one_sgd_step_moves_a_scaled_parameter_by_lr_times_scale_times_its_gradient():
    weight, alpha = nn.Parameter(torch.ones(2)), nn.Parameter(torch.full((2, 2), 0.5))
    sgd = OmegaConf.create({"name": "sgd", "lr": 0.01, "momentum": 0.0, "schedule": "none"})
    optimizer, _ = build_optimizer(sgd, [weight, alpha], 1, 1, [([alpha], 1000.0)])
    c = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    ((alpha * c).sum() + weight @ torch.tensor([2.0, 3.0])).backward()  # gradients c, [2, 3]
    optimizer.step()
    # α: 0.5 − 0.01 · 1000 · c; the weight: 1 − 0.01 · [2, 3]
    assert torch.allclose(alpha, torch.tensor([[-9.5, 20.5], [-4.5, 0.5]]))
    assert torch.allclose(weight, torch.tensor([0.98, 0.97]))


@pytest.mark.parametrize("schedule", ["cosine", "step", "onecycle"])
def test_schedules_scale_both_groups_alike(schedule):
    weight, alpha = nn.Parameter(torch.ones(2)), nn.Parameter(torch.ones(2))
    adam = OmegaConf.create(
        {"name": "adam", "lr": 0.01, "schedule": schedule, "step_epochs": 1, "gamma": 0.5}
    )
    optimizer, scheduler = build_optimizer(adam, [weight, alpha], 4, 3, [([alpha], 100.0)])
    for _ in range(7):
        optimizer.step()
        scheduler.step()
        base, scaled = (group["lr"] for group in optimizer.param_groups)
        assert scaled == pytest.approx(100.0 * base)
    if schedule == "onecycle":  # each group peaks at its own learning rate
        peaks = [group["max_lr"] for group in optimizer.param_groups]
        assert peaks == pytest.approx([0.01, 1.0])
