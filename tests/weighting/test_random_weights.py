"""RLW (Lin et al. 2022): random softmax-normal weights on the whole loss, heads included."""

import pytest
import torch

from mtlrun.sharing import ModelOutput
from tests.weighting.problems import SharedVector, WithHeads, make


def test_rlw_weighs_every_tasks_whole_loss_by_a_fresh_softmax_normal_draw():
    gradients = [[1.0, 2.0], [-3.0, 1.0]]
    model = WithHeads([1.0, 1.0], tasks=2)
    weighting = make("random", model)
    drawn = []
    for seed in (0, 1):
        model.zero_grad()
        torch.manual_seed(seed)
        expected = torch.softmax(torch.randn(2), dim=0)  # Algorithm 1, the normal distribution
        torch.manual_seed(seed)
        h = model.representation()
        total = weighting.backward(model.losses(h, gradients), ModelOutput({}, {}, None, [h]))
        raw = torch.tensor(gradients) @ model.theta.detach()  # ∂L_t/∂w_t unweighted
        # Each head gets its own loss's gradient times λ_t (an aggregator would give it 1×).
        torch.testing.assert_close(model.heads.grad, expected * raw)
        torch.testing.assert_close(model.theta.grad, expected @ torch.tensor(gradients))
        torch.testing.assert_close(total, expected @ raw)
        drawn.append(expected)
    assert not torch.allclose(drawn[0], drawn[1])
    logged = weighting.logged()
    mean = (drawn[0] + drawn[1]) / 2
    assert [logged["t0/weight"], logged["t1/weight"]] == pytest.approx(mean.tolist())


def test_rlw_needs_no_shared_parameters():
    model = SharedVector([0.0, 0.0], shares=False)
    h = model.representation()
    losses = [torch.tensor([1.0, 0.0]) @ h, torch.tensor([0.0, 1.0]) @ h]
    make("random", model).backward(losses, model.output(h))
    assert model.theta.grad is not None
