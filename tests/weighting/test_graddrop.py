"""GradDrop (Chen et al. 2020) on the shared activation layer, against the paper's Algorithm 1
(as LibMTL implements it) on a known case."""

import pytest
import torch
from torch import nn

from mtlrun.sharing import ModelOutput, MultiTaskModel
from tests.weighting.problems import make

INPUTS = torch.tensor([[1.0, -2.0, 0.5], [-1.0, 1.0, 2.0]])  # a batch of 2, 3 features
TARGETS = torch.tensor([[1.0, -1.0], [2.0, 0.5]])  # per example, per task


class Layer(MultiTaskModel):
    """A = x ∘ θ, the shared activations (signs mixed); task t's loss is the batch mean of
    (A · w_t) y_t, w_t its head."""

    def __init__(self) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor([1.0, -0.5, 2.0]))
        self.heads = nn.Parameter(torch.tensor([[1.0, 2.0, -1.0], [-3.0, 1.0, 1.0]]))

    def step(self) -> tuple[torch.Tensor, list[torch.Tensor]]:
        activations = INPUTS * self.theta
        losses = [((activations @ self.heads[t]) * TARGETS[:, t]).mean() for t in range(2)]
        return activations, losses

    @property
    def shares_representation(self) -> bool:
        return True


def algorithm_1(activations: torch.Tensor, losses: list[torch.Tensor]) -> torch.Tensor:
    """Chen et al.'s Algorithm 1 (f the identity, no leak), as LibMTL's `GradDrop.backward`:
    the gradient to backpropagate from A."""
    grads = torch.stack(
        [torch.autograd.grad(loss, activations, retain_graph=True)[0] for loss in losses]
    )
    signed = (grads * activations.sign()).sum(dim=1)  # sign(A) ∘ ∂L/∂A, summed over the batch
    purity = 0.5 * (1 + signed.sum(dim=0) / signed.abs().sum(dim=0))
    uniform = torch.rand_like(purity)
    masks = (purity > uniform) * (signed > 0) + (purity < uniform) * (signed < 0)
    return (masks.unsqueeze(1) * grads).sum(dim=0)


@pytest.mark.parametrize("seed", range(5))
def test_graddrop_masks_the_representation_gradient_as_algorithm_1(seed):
    model = Layer()
    weighting = make("graddrop", model)
    activations, losses = model.step()
    torch.manual_seed(seed)
    weighting.backward(losses, ModelOutput({}, {}, None, [activations]))
    activations, losses = model.step()
    torch.manual_seed(seed)
    dropped = algorithm_1(activations, losses)
    # The masked gradient on A, backpropagated through A = x ∘ θ.
    torch.testing.assert_close(model.theta.grad, (dropped * INPUTS).sum(dim=0))
    # The heads get their own task's gradient, unmasked.
    expected_heads = torch.stack(
        [(activations.detach() * TARGETS[:, t, None]).mean(dim=0) for t in range(2)]
    )
    torch.testing.assert_close(model.heads.grad, expected_heads)


def test_graddrop_keeps_one_sign_per_coordinate_as_often_as_its_purity_says():
    # One example, A > 0. Coordinate 1: both tasks positive, always kept. Coordinate 0: +1 and
    # −3 disagree; the positive part is kept with probability P = ½(1 + (1 − 3)/(1 + 3)) = 0.25.
    torch.manual_seed(0)
    theta = nn.Parameter(torch.ones(2))
    model = MultiTaskModel()
    model.theta = theta
    weighting = make("graddrop", model)
    kept = []
    for _ in range(400):
        theta.grad = None
        activations = (theta * 1.0)[None]
        losses = [(torch.tensor(g) * activations).sum() for g in ([1.0, 2.0], [-3.0, 1.0])]
        weighting.backward(losses, ModelOutput({}, {}, None, [activations]))
        assert theta.grad[1] == 3.0 and theta.grad[0].item() in (1.0, -3.0)
        kept.append(theta.grad[0].item() == 1.0)
    assert abs(sum(kept) / len(kept) - 0.25) < 0.06
