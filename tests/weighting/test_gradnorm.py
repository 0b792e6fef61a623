import pytest
import torch

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
