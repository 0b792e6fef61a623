"""ExcessMTL (He et al. 2024) as the loss weighting the paper, the authors' code and LibMTL
define: weights from the excess risks on the shared parameters, on the whole loss."""

import pytest
import torch

from mtlrun.sharing import ModelOutput
from tests.weighting.problems import WithHeads, make


def libmtl_weights(steps: list[torch.Tensor], step_size: float) -> list[torch.Tensor]:
    """LibMTL's `ExcessMTL.backward`, step by step, on the shared parameters' Jacobians: the
    weights (summing to T, from 1) each step's loss is weighted with."""
    weights, squares, baseline, out = torch.ones(len(steps[0])), None, None, []
    for jacobian in steps:
        squares = jacobian**2 if squares is None else squares + jacobian**2
        risk = (jacobian * jacobian / torch.sqrt(squares + 1e-7)).sum(dim=1)
        if baseline is None:
            baseline = risk
        else:
            weights = weights * torch.exp(risk / baseline * step_size)
            weights = weights / weights.sum() * len(weights)
        out.append(weights)
    return out


@pytest.mark.parametrize("weights_sum_to", ["one", "tasks"])
def test_excess_mtl_weighs_each_whole_task_loss_as_libmtl_up_to_the_weights_sum(weights_sum_to):
    # L_t = w_t · (g_t · θ): the Jacobian on the shared θ is g_t w_t, the heads' gradient g_t · θ.
    steps = [[[1.0, 0.0], [0.0, 2.0]], [[1.0, 0.5], [0.0, 0.2]], [[0.5, 0.0], [1.0, 0.1]]]
    model = WithHeads([1.0, 1.0], tasks=2)
    weighting = make("excess_mtl", model, robust_step_size=0.5, weights_sum_to=weights_sum_to)
    expected = libmtl_weights([torch.tensor(g) for g in steps], 0.5)
    scale = 1.0 if weights_sum_to == "one" else 2.0
    for gradients, libmtl in zip(steps, expected, strict=True):
        model.zero_grad()
        h = model.representation()
        weighting.backward(model.losses(h, gradients), ModelOutput({}, {}, None, [h]))
        weights = libmtl / 2 * scale  # LibMTL's sum to T; the paper's simplex
        g = torch.tensor(gradients)
        torch.testing.assert_close(model.theta.grad, weights @ g)
        # The heads too: each gets its own loss's gradient times its weight.
        torch.testing.assert_close(model.heads.grad, weights * (g @ model.theta.detach()))
    assert expected[-1][0] != expected[-1][1]  # the weights moved
