"""Small problems for the weighting tests: a stub model with one shared parameter vector, and
a short real training run."""

import json
from pathlib import Path

import torch
from omegaconf import OmegaConf
from torch import Tensor, nn

from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.train import train
from mtlrun.weighting import WEIGHTINGS, Weighting
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


def make(name: str, model: nn.Module, tasks: int = 2, **options: object) -> Weighting:
    node = OmegaConf.create({"name": name, **options})
    return WEIGHTINGS.get(name)(node, [Task(f"t{i}", 1.0) for i in range(tasks)], model)


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
            "tasks=[reconstruction,class]",
            "tasks.reconstruction.iw_samples=0",
            f"weighting={name}",
            *overrides,
        ]
    )
    train(cfg, run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [record for record in records if record["split"] == "train"]


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
