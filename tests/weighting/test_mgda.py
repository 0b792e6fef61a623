import pytest
import torch

from tests.weighting.problems import SharedVector, linear_losses, make, train_records


def test_mgda_gives_the_min_norm_convex_combination():
    model = SharedVector([0.0, 0.0])
    weighting = make("mgda", model)
    h = model.representation()
    weighting.backward(linear_losses(h, [[1.0, 0.0], [0.0, 2.0]]), model.output(h))
    # min over a of ‖a·[1, 0] + (1 − a)·[0, 2]‖² = a² + 4(1 − a)²: a = 0.8
    assert torch.allclose(model.theta.grad, torch.tensor([0.8, 0.4]), atol=1e-4)
    logged = weighting.logged()
    assert logged["t0/weight"] == pytest.approx(0.8, abs=1e-4)
    assert logged["t1/weight"] == pytest.approx(0.2, abs=1e-4)


def test_a_run_logs_convex_weights(run_dir):
    for record in train_records("mgda", run_dir):
        weights = record["train/reconstruction/weight"] + record["train/class/weight"]
        assert weights == pytest.approx(1.0, abs=1e-4)
        assert record["train/class/cosine"] >= 0  # the min-norm point decreases every task
