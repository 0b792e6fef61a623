import math

import pytest
import torch

from tests.weighting.problems import SharedVector, make, train_records


def test_the_weights_follow_the_last_two_epochs():
    weighting = make("dwa", SharedVector([0.0]), temperature=2.0)
    model = SharedVector([0.0])
    weighting.end_epoch([2.0, 1.0])
    weighting.end_epoch([1.0, 1.0])
    assert weighting.logged() == {"t0/weight": 1.0, "t1/weight": 1.0}  # epochs 1 and 2
    # Epoch 3: r = [1/2, 1/1]; w_t = 2·exp(r_t/2) / (exp(1/4) + exp(1/2))
    expected = [2 / (1 + math.exp(0.25)), 2 * math.exp(0.25) / (1 + math.exp(0.25))]
    losses = [torch.tensor(3.0, requires_grad=True), torch.tensor(5.0, requires_grad=True)]
    total = weighting.backward(losses, model.output(model.representation()))
    assert total.item() == pytest.approx(3 * expected[0] + 5 * expected[1])
    assert [loss.grad.item() for loss in losses] == pytest.approx(expected)
    weighting.end_epoch([0.9, 0.8])
    assert list(weighting.logged().values()) == pytest.approx(expected)


def test_a_resumed_weighting_continues_identically():
    original = make("dwa", SharedVector([0.0]))
    for means in ([4.0, 2.0], [3.0, 1.8]):
        original.end_epoch(means)
    resumed = make("dwa", SharedVector([0.0]))
    resumed.load_state_dict(original.state_dict())
    assert torch.equal(resumed.weights, original.weights)
    assert not torch.equal(resumed.weights, torch.ones(2))
    original.end_epoch([2.0, 1.7])
    resumed.end_epoch([2.0, 1.7])
    assert resumed.logged() == original.logged()
    assert torch.equal(resumed.weights, original.weights)


def test_a_run_logs_the_weights(run_dir):
    records = train_records("dwa", run_dir, "trainer.epochs=3")
    weights = [(r["train/reconstruction/weight"], r["train/class/weight"]) for r in records]
    assert weights[:2] == [(1.0, 1.0), (1.0, 1.0)]
    assert weights[2] != (1.0, 1.0)
    assert sum(weights[2]) == pytest.approx(2.0)
