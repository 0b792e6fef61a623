"""Inter-task affinity (Fifty et al., "Efficiently Identifying Task Groupings for Multi-Task
Learning", NeurIPS 2021: TAG), measured during training with `trainer.task_affinity=true`; the
grouping it suggests is `mtlrun.report.grouping`'s (`mtlrun report RUNS groups=k`)."""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.func import functional_call

from mtlrun.data import Batch
from mtlrun.distributed import WHOLE, Shard
from mtlrun.errors import ConfigError


@dataclass
class RandomState:
    """The generators a forward pass draws from (dropout, a VAE's sample): the CPU's, and the
    device's on CUDA."""

    cpu: Tensor
    cuda: Tensor | None

    @contextmanager
    def restored(self, device: torch.device) -> Iterator[None]:
        """Inside: the generators as they were; after: as they were before entering."""
        cuda = [device] if self.cuda is not None else []
        with torch.random.fork_rng(devices=cuda, device_type=device.type):
            torch.set_rng_state(self.cpu)
            if self.cuda is not None:
                torch.cuda.set_rng_state(self.cuda, device)
            yield


class TaskAffinity:
    """Z_{i→j} = 1 − L_j(θ_s − η ∇_{θ_s} L_i, θ_j) / L_j(θ_s, θ_j) (their eq. 3): how a step on
    task i's loss alone, on the shared parameters θ_s, changes task j's loss on the same batch.
    Positive: i's step helps j. The step is their lookahead, plain gradient descent at the
    optimiser's current learning rate η, whatever the optimiser; the shared parameters are those
    every task's loss depends on. Measured every `every` steps and averaged per epoch (their
    Algorithm 1 averages over the steps of training; `mtlrun report` averages the epochs);
    costs, per measurement, one backward pass and one forward pass per task. Under DDP, the
    losses and gradients are the whole batch's.

    The lookahead forward passes see the same random draws as the step's own forward pass
    (dropout masks, a VAE's sample z): the generators' state from just before that pass
    (`draws`) is restored for each of them, so before and after differ by the step alone. With
    fresh draws, the noise of Z on MultiMNIST's recipe (dropout 0.5) was about 100 times its
    off-diagonal signal, and independent draws bias the ratio of losses (Jensen). The draws are
    made in a fork of the generators: measuring leaves training's random numbers as they were."""

    def __init__(self, experiment: Any, every: int) -> None:
        """`experiment`: the `mtlrun.experiment.Experiment` being trained (its model, tasks,
        optimiser and ranks), which builds this measurement."""
        self.experiment = experiment
        self.every = every
        n = len(experiment.loss_tasks)
        self.sums = torch.zeros(n, n, device=experiment.device)
        self.count = 0
        self.shared: list[str] | None = None  # names of the shared parameters, found once

    def shared_parameters(self, losses: list[Tensor]) -> list[str]:
        model = self.experiment.model
        named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
        reached = [
            torch.autograd.grad(loss, [p for _, p in named], retain_graph=True, allow_unused=True)
            for loss in losses
        ]
        return [
            name
            for k, (name, _) in enumerate(named)
            if all(grads[k] is not None for grads in reached)
        ]

    def draws(self, step: int) -> RandomState | None:
        """Before the forward pass of training step `step`: the generators' state, if the step
        is measured."""
        if step % self.every:
            return None
        device = self.experiment.device
        return RandomState(
            torch.get_rng_state(),
            torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        )

    def measure(
        self,
        step: int,
        losses: list[Tensor],
        inputs: Tensor,
        batch: Batch,
        draws: RandomState | None,
        shard: Shard = WHOLE,
    ) -> None:
        """After the forward pass of training step `step` (its `losses`, with their graph, on
        `shard` of the step's batch), before the weighting's backward pass; `draws` is what
        `draws(step)` returned before that pass."""
        trained = all(loss.requires_grad for loss in losses)
        if draws is None or len(losses) < 2 or not trained:
            return
        if self.shared is None:
            self.shared = self.shared_parameters(losses)
        if not self.shared:
            return  # the tasks share no parameters: there is no lookahead to take
        experiment = self.experiment
        parameters = dict(experiment.model.named_parameters())
        shared = [parameters[name] for name in self.shared]
        rate = experiment.optimizer.param_groups[0]["lr"]
        before = torch.stack([loss.detach().float() for loss in losses])
        shard.reduce_shared([before])
        after = torch.empty_like(self.sums)
        for i, loss in enumerate(losses):
            grads = [g.float() for g in torch.autograd.grad(loss, shared, retain_graph=True)]
            shard.reduce_shared(grads)  # under DDP: the whole batch's gradient of task i
            stepped = {
                name: (p - rate * g).to(p.dtype)
                for name, p, g in zip(self.shared, shared, grads, strict=True)
            }
            with torch.no_grad(), experiment.autocast, draws.restored(experiment.device):
                output = functional_call(experiment.model, stepped, (inputs,))
                looked = experiment.task_losses(output, batch, shard.loss_scales)
            after[i] = torch.stack([value.float() for value in looked])
        shard.reduce_shared([after[i] for i in range(len(losses))])
        self.sums += 1 - after / before
        self.count += 1

    def epoch_matrix(self) -> list[list[float]] | None:
        """The epoch's mean Z (rows i, columns j), and a fresh start; None if not measured."""
        if not self.count:
            return None
        matrix = (self.sums / self.count).tolist()
        self.sums.zero_()
        self.count = 0
        return matrix

    def state(self) -> dict:
        return {"sums": self.sums.clone(), "count": self.count}

    def restore(self, state: dict) -> None:
        self.sums.copy_(state["sums"])
        self.count = state["count"]


def check_measurable(experiment: Any) -> None:
    """Refuse, before training, affinity where there is nothing to measure: a lone task with a
    loss (no other task to affect), a strategy that trains its tasks in separate stages, or a
    model whose tasks share no parameters (no step that moves them all); it would train without
    a word and log no matrix."""
    tasks = [task.name for task in experiment.loss_tasks]
    if len(tasks) < 2:
        raise ConfigError(
            "trainer.task_affinity=true measures how a step on one task's loss changes another "
            f"task's, but this run trains one task ({', '.join(tasks)}); add a task, e.g. "
            "+task@tasks.digit=classification, or set trainer.task_affinity=false"
        )
    sharing = experiment.cfg.sharing
    if experiment.model.stage is not None:
        raise ConfigError(
            f"trainer.task_affinity=true measures a step on every task's loss, but "
            f"sharing={sharing.name} trains some tasks in one stage and the others in the "
            "next; set trainer.task_affinity=false"
        )
    if not experiment.model.shares_representation:
        chosen = f"sharing={sharing.name}"
        if sharing.get("shared_layers") == 0:
            chosen += " with sharing.shared_layers=0"
        raise ConfigError(
            "trainer.task_affinity=true measures a step on the parameters the tasks share, but "
            f"{chosen} shares none; use sharing=hard, or set trainer.task_affinity=false"
        )


def affinity_records(tasks: list[str], matrix: list[list[float]]) -> dict[str, float]:
    """`train/affinity/<i>/<j>`: the effect of a step on task i on task j's loss."""
    return {
        f"train/affinity/{source}/{target}": matrix[i][j]
        for i, source in enumerate(tasks)
        for j, target in enumerate(tasks)
        if i != j
    }
