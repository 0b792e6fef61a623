import math

import pytest
import torch

from mtlrun.checkpoint import load_checkpoint
from tests.weighting.problems import SharedVector, make, train_records


def test_the_loss_is_exp_minus_s_times_l_plus_s():
    weighting = make("uncertainty", SharedVector([0.0]))
    with torch.no_grad():
        weighting.log_variances.copy_(torch.tensor([math.log(2.0), 0.0]))
    losses = [torch.tensor(3.0, requires_grad=True), torch.tensor(5.0, requires_grad=True)]
    model = SharedVector([0.0])
    auxiliary = torch.tensor(0.25)
    total = weighting.backward(losses, model.output(model.representation(), auxiliary))
    assert total.item() == pytest.approx(3.0 / 2 + 5.0 + math.log(2.0) + 0.25)
    assert weighting.logged() == pytest.approx({"t0/weight": 0.5, "t1/weight": 1.0})


def test_the_noisier_task_is_weighted_down():
    """Two regression losses, one with 10× the noise: each weight tends to 1 / its loss."""
    generator = torch.Generator().manual_seed(0)
    targets = torch.randn(2, 256, generator=generator) * torch.tensor([[0.1], [1.0]]) + 1.0
    predictions = torch.nn.Parameter(torch.zeros(2))
    weighting = make("uncertainty", SharedVector([0.0]))
    optimizer = torch.optim.Adam([predictions, *weighting.extra_parameters()], lr=0.05)
    model = SharedVector([0.0])
    for _ in range(300):
        optimizer.zero_grad()
        losses = list((targets - predictions[:, None]).pow(2).mean(dim=1))
        weighting.backward(losses, model.output(model.representation()))
        optimizer.step()
    weights = weighting.logged()
    assert weights["t0/weight"] > 20 * weights["t1/weight"]
    # Converged: exp(−s)·L + s is least at exp(−s) = 1 / L, for each task.
    assert weights["t0/weight"] == pytest.approx(1 / losses[0].item(), rel=1e-3)
    assert weights["t1/weight"] == pytest.approx(1 / losses[1].item(), rel=1e-3)


def test_a_run_logs_the_weights(run_dir):
    records = train_records("uncertainty", run_dir)
    assert [r["train/class/weight"] for r in records][-1] != 1.0  # learnt
    # The last epoch's are exp(−s) of the log-variances the run ended with (tasks in order).
    s = load_checkpoint(run_dir / "checkpoints" / "last.pt")["weighting"]["log_variances"]
    assert len(records) == 2
    last = records[-1]
    assert last["train/reconstruction/weight"] == pytest.approx(math.exp(-s[0].item()))
    assert last["train/class/weight"] == pytest.approx(math.exp(-s[1].item()))
