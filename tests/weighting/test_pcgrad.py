import torch

from tests.weighting.problems import aggregated, aggregations, assert_logs_match, train_records


def test_pcgrad_removes_the_conflicting_components():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])  # g₁·g₂ = −1 < 0
    # g₁ − (g₁·g₂/‖g₂‖²) g₂ = [½, ½] and g₂ − (g₂·g₁/‖g₁‖²) g₁ = [0, 1], summed
    update = aggregated("pcgrad", [g1.tolist(), g2.tolist()])
    assert torch.allclose(update, torch.tensor([0.5, 1.5]))
    assert torch.allclose(update, g1 + g2 + 0.5 * g2 + g1)


def test_pcgrad_leaves_agreeing_gradients_alone():
    update = aggregated("pcgrad", [[1.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(update, torch.tensor([2.0, 1.0]))


def test_a_run_logs_cosines_and_weights(run_dir):
    with aggregations() as calls:
        records = train_records("pcgrad", run_dir)
    assert len(records) == 2
    assert_logs_match(records, calls)
    for record in records:  # two tasks: each keeps its whole gradient, plus the other's share
        assert record["train/reconstruction/weight"] >= 1 and record["train/class/weight"] >= 1
