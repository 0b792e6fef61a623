import pytest
import torch
from torch import nn

from mtlrun.errors import ConfigError
from mtlrun.sharing import ModelOutput, MultiTaskModel
from tests.weighting.problems import SharedVector, make, train_records

A, B = torch.tensor([1.0, 0.0, 2.0]), torch.tensor([0.0, -1.0, 1.0])


def losses(h: torch.Tensor) -> list[torch.Tensor]:
    """Two tasks whose gradient norms on h differ by a factor of about 30."""
    return [10 * (h - A).pow(2).sum(), 0.5 * (h - B).pow(2).sum()]


def weighted_norm_ratio(weighting, model) -> float:
    h = model.representation()
    norms = [torch.autograd.grad(loss, h)[0].norm() for loss in losses(h)]
    weights = list(weighting.logged().values())
    return (weights[0] * norms[0] / (weights[1] * norms[1])).item()


def test_gradnorm_equalises_the_weighted_gradient_norms():
    model = SharedVector([0.0, 0.0, 0.0])
    weighting = make("gradnorm", model)
    assert weighted_norm_ratio(weighting, model) > 10
    # Only the weights learn: the loss ratios stay 1, so the target is the mean norm.
    optimizer = torch.optim.Adam(weighting.extra_parameters(), lr=0.01)
    for _ in range(200):
        optimizer.zero_grad()
        h = model.representation()
        weighting.backward(losses(h), model.output(h))
        optimizer.step()
    assert weighted_norm_ratio(weighting, model) == pytest.approx(1.0, abs=0.05)
    assert sum(weighting.logged().values()) == pytest.approx(2.0)


def test_the_weights_loss_does_not_reach_the_model():
    model = SharedVector([0.0, 0.0, 0.0])
    weighting = make("gradnorm", model)
    with torch.no_grad():
        weighting.weights.copy_(torch.tensor([0.5, 1.5]))
    h = model.representation()
    weighting.backward(losses(h), model.output(h))
    assert weighting.weights.grad is not None and weighting.weights.grad.abs().sum() > 0
    first, second = losses(model.representation())
    expected = torch.autograd.grad(0.5 * first + 1.5 * second, model.theta)[0]
    assert torch.allclose(model.theta.grad, expected)


def test_a_run_logs_weights_that_sum_to_the_task_count(run_dir):
    records = train_records("gradnorm", run_dir)
    for record in records:
        total = record["train/reconstruction/weight"] + record["train/class/weight"]
        assert total == pytest.approx(2.0, abs=1e-4)
    assert records[-1]["train/class/weight"] != 1.0


class SharedLinear(MultiTaskModel):
    """h_b = W x_b, with W the last (and only) shared layer."""

    def __init__(self) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.eye(2))

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return [self.W]

    @property
    def shares_representation(self) -> bool:
        return True


def step(weighting, model, inputs: torch.Tensor, gradients: list[list[float]]) -> None:
    """Task t reads example t alone: L_t = g_t · W x_t + 1 (1 keeps the loss ratios defined)."""
    h = inputs @ model.W.T
    losses = [torch.tensor(g) @ h[t] + 1.0 for t, g in enumerate(gradients)]
    weighting.backward(losses, ModelOutput({}, {}, None, shared=[h]))


@pytest.mark.parametrize(
    ("gradient_of", "expected"),
    [("last_shared_weights", [5.0, -2.0]), ("representation", [5.0, -1.0])],
)
def test_the_weights_gradient_is_that_of_the_norms_taken_on_w_or_on_h(gradient_of, expected):
    """x₁ = [1, 0], x₂ = [0, 2]; g₁ = [3, 4], g₂ = [1, 0]. On W: ∇_W L_t = g_t x_tᵀ, so
    G = (‖g₁‖‖x₁‖, ‖g₂‖‖x₂‖) = (5, 2); on h: G = (‖g₁‖, ‖g₂‖) = (5, 1). At the first step the
    loss ratios are 1, so the target is the mean Ḡ and ∂L_grad/∂w_t = sign(G_t − Ḡ)·G_t."""
    model = SharedLinear()
    weighting = make("gradnorm", model, gradient_of=gradient_of)
    step(weighting, model, torch.tensor([[1.0, 0.0], [0.0, 2.0]]), [[3.0, 4.0], [1.0, 0.0]])
    assert torch.allclose(weighting.weights.grad, torch.tensor(expected))


def test_norms_equal_on_h_but_not_on_w_give_different_weights():
    """Equal task gradients on h, read from inputs of norms 1 and 2: on h GradNorm has nothing
    to balance; on W the second task's gradient is twice the first's, so the weights settle
    where w₁·1 = w₂·2 with w₁ + w₂ = 2: (4/3, 2/3)."""
    weights = {}
    for gradient_of in ("representation", "last_shared_weights"):
        model = SharedLinear()
        weighting = make("gradnorm", model, gradient_of=gradient_of)
        optimizer = torch.optim.Adam(weighting.extra_parameters(), lr=0.01)
        for _ in range(300):
            optimizer.zero_grad()
            step(weighting, model, torch.tensor([[1.0, 0.0], [0.0, 2.0]]), [[1.0, 1.0]] * 2)
            optimizer.step()
        weights[gradient_of] = weighting.logged()
    assert weights["representation"] == {"t0/weight": 1.0, "t1/weight": 1.0}
    assert weights["last_shared_weights"]["t0/weight"] == pytest.approx(4 / 3, abs=0.02)
    assert weights["last_shared_weights"]["t1/weight"] == pytest.approx(2 / 3, abs=0.02)


def test_a_model_without_a_last_shared_layer_is_a_one_line_config_error():
    with pytest.raises(ConfigError) as error:
        make("gradnorm", SharedVector([0.0, 0.0], shares=False))
    assert str(error.value) == (
        "weighting=gradnorm with weighting.gradient_of=last_shared_weights needs a layer all "
        "tasks share, and this sharing strategy has none; use "
        "weighting.gradient_of=representation or sharing=hard, cross_stitch or concat"
    )
    make("gradnorm", SharedVector([0.0, 0.0], shares=False), gradient_of="representation")
