"""Small problems for the weighting tests: a stub model with one shared parameter vector, and
a short real training run."""

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from mtlrun.lifecycle import train
from mtlrun.parts import WEIGHTINGS
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting import Weighting
from tests.conftest import TINY, compose_config


class SharedVector(MultiTaskModel):
    """θ, shared by every task; the shared representation is h = θ (through an op, so that it
    is a cut in the graph as a backbone's output is), and θ is also the last shared layer's
    weights. `shares=False` plays a strategy that shares nothing."""

    def __init__(self, theta: list[float], shares: bool = True) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.tensor(theta))
        self.shares = shares

    def representation(self) -> Tensor:
        return self.theta * 1.0

    def last_shared_parameters(self) -> list[nn.Parameter]:
        return [self.theta] if self.shares else []

    @property
    def shares_representation(self) -> bool:
        return self.shares

    def output(self, h: Tensor, auxiliary_loss: Tensor | None = None) -> ModelOutput:
        return ModelOutput({}, {}, auxiliary_loss, shared=[h] if self.shares else [])


class WithHeads(SharedVector):
    """θ shared, and a scalar head w_t per task: L_t = w_t · (g_t · θ)."""

    def __init__(self, theta: list[float], tasks: int) -> None:
        super().__init__(theta)
        self.heads = nn.Parameter(torch.ones(tasks))

    def losses(self, h: torch.Tensor, gradients: list[list[float]]) -> list[torch.Tensor]:
        return [self.heads[t] * (torch.tensor(g) @ h) for t, g in enumerate(gradients)]


def make(name: str, model: nn.Module, tasks: int = 2, **options: object) -> Weighting:
    node = OmegaConf.create({"name": name, **options})
    return WEIGHTINGS.build(
        name, node, "weighting", [Task(f"t{i}", 1.0) for i in range(tasks)], model
    )


def linear_losses(h: Tensor, gradients: list[list[float]]) -> list[Tensor]:
    """L_t = g_t · h: task t's gradient on θ is exactly g_t."""
    return [torch.tensor(g) @ h for g in gradients]


def aggregated(name: str, gradients: list[list[float]], **options: object) -> Tensor:
    """What weighting `name` puts into θ.grad for tasks whose gradients are `gradients`."""
    model = SharedVector([0.0] * len(gradients[0]))
    weighting = make(name, model, len(gradients), **options)
    h = model.representation()
    weighting.backward(linear_losses(h, gradients), model.output(h))
    return model.theta.grad


def train_records(name: str, run_dir: Path, *overrides: str) -> list[dict]:
    """A two-epoch run of reconstruction and class on a VAE (whose KL is part of the
    reconstruction task's loss) with weighting `name`; the train records of its metrics.jsonl."""
    cfg = compose_config(
        [
            *TINY,
            "dataset.n_train=320",
            "dataset.val_size=64",
            "dataset.n_test=64",
            "backbone.hidden_dims=[64]",
            "+task@tasks.class=classification",
            "tasks.reconstruction.iw_samples=0",
            f"weighting={name}",
            *overrides,
        ]
    )
    train(cfg, run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [record for record in records if record["split"] == "train"]


# loss_changes("equal"): the sum's gradient at θ = 0 is 6(0 − a) + 2(0 − b) = [−4, −2], so θ
# steps to [0.04, 0.02]: L₁ goes from 3 to 3·(0.96² + 0.02²) = 2.766, L₂ from 2 to
# 1.04² + 0.98² = 2.042.
EQUAL_STEP = [2.766 - 3, 2.042 - 2]


def loss_changes(name: str, lr: float = 0.01) -> list[float]:
    """How one step of weighting `name` changes two conflicting losses, L₁ = 3‖θ − a‖² and
    L₂ = ‖θ − b‖² from θ = 0: the plain sum's step raises L₂."""
    a, b = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])

    def losses(h: Tensor) -> list[Tensor]:
        return [3 * (h - a).pow(2).sum(), (h - b).pow(2).sum()]

    model = SharedVector([0.0, 0.0])
    weighting = make(name, model)
    h = model.representation()
    weighting.backward(losses(h), model.output(h))
    with torch.no_grad():
        after = losses(model.theta - lr * model.theta.grad)
        return [(new - old).item() for new, old in zip(after, losses(h.detach()), strict=True)]


@contextmanager
def aggregations() -> Iterator[list[tuple[Tensor, Tensor]]]:
    """Inside the block, every call of a torchjd aggregator: the Jacobian it was given (a row
    per task) and the update it returned, in float64 on the CPU, appended to the list."""
    from torchjd.aggregation import Aggregator

    calls: list[tuple[Tensor, Tensor]] = []

    def record(module: nn.Module, inputs: tuple[Tensor], update: Tensor) -> None:
        if isinstance(module, Aggregator):
            calls.append((inputs[0].detach().double().cpu(), update.detach().double().cpu()))

    handle = torch.nn.modules.module.register_module_forward_hook(record)
    try:
        yield calls
    finally:
        handle.remove()


def expected_logs(
    records: list[dict], calls: list[tuple[Tensor, Tensor]], tasks: list[str]
) -> list[dict[str, float]]:
    """What each train record must log, computed here from the aggregator's steps: per task,
    the cosine between its row of the Jacobian and the update, and the weight of its row in the
    update (J's rows are independent, so the update's coordinates in them are unique), each
    averaged over the steps of the record's epoch (the records' `step` counts them)."""
    assert len(calls) == records[-1]["step"]  # one aggregation per training step
    expected, first = [], 0
    for record in records:
        steps = calls[first : record["step"]]
        first = record["step"]
        cosines, weights = [], []
        for jacobian, update in steps:
            cosines.append(jacobian @ update / (jacobian.norm(dim=1) * update.norm()))
            weights.append(torch.linalg.lstsq(jacobian.T, update.unsqueeze(1)).solution[:, 0])
        cosine, weight = torch.stack(cosines).mean(0), torch.stack(weights).mean(0)
        logged = {}
        for t, task in enumerate(tasks):
            logged[f"train/{task}/cosine"] = cosine[t].item()
            logged[f"train/{task}/weight"] = weight[t].item()
        expected.append(logged)
    return expected


def assert_logs_match(
    records: list[dict],
    calls: list[tuple[Tensor, Tensor]],
    tasks: tuple[str, ...] = ("reconstruction", "class"),
) -> None:
    """The records' cosines and weights are the ones `expected_logs` computes."""
    for record, logged in zip(records, expected_logs(records, calls, list(tasks)), strict=True):
        got = {key: record[key] for key in logged}
        assert got == pytest.approx(logged, rel=1e-4, abs=1e-6)
