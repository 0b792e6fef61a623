import numpy as np
import pytest

from tests.weighting.problems import (
    EQUAL_STEP,
    SharedVector,
    linear_losses,
    loss_changes,
    make,
    train_records,
)


def test_nashmtl_decreases_both_losses_where_the_sum_does_not():
    assert loss_changes("equal") == pytest.approx(EQUAL_STEP, abs=1e-5)
    assert all(change < 0 for change in loss_changes("nashmtl"))


def test_the_solver_warm_start_is_saved_and_restored():
    model = SharedVector([0.0, 0.0])
    weighting = make("nashmtl", model)
    h = model.representation()
    weighting.backward(linear_losses(h, [[-6.0, 0.0], [2.0, -2.0]]), model.output(h))
    alpha = weighting.aggregator.weighting.prvs_alpha
    assert not np.allclose(alpha, 1.0)  # moved from the initial equal weights

    restored = make("nashmtl", model)
    restored.load_state_dict(weighting.state_dict())
    assert np.array_equal(restored.aggregator.weighting.prvs_alpha, alpha)


def test_a_run_logs_positive_cosines(run_dir):
    for record in train_records("nashmtl", run_dir):
        assert record["train/reconstruction/cosine"] > 0  # every task improves by 1/α_t
        assert record["train/class/cosine"] > 0
