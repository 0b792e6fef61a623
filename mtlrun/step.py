"""One training step, top to bottom: forward, task losses, the weighting's backward, the
gradients reduced over the ranks, clipping, the optimiser's step and the schedule's. The epoch
(`mtlrun.loop.train_epoch`) calls it once per batch; nothing in it reads a value back to the
host, so on a GPU the step is kernel launches only."""

from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from mtlrun.data import Batch
from mtlrun.distributed import WHOLE, Shard

if TYPE_CHECKING:
    from mtlrun.experiment import Experiment
    from mtlrun.tasks import Task


@dataclass
class StepLosses:
    """A step's losses, detached, on the device: `values` the total and each task's loss (in
    the order of `Experiment.loss_tasks`); `counts` what each weighs in an epoch's means: the
    examples it is a mean over, a number for all of them, or a tensor of one per value where
    some targets are missing (0 for a rank's stand-in row, which must add nothing to an epoch's
    means). Under DDP with missing targets the task losses are scaled (`Shard.labelled`) and
    the counts with them, so that their products summed over the ranks are the whole batch's."""

    values: Tensor
    counts: Tensor | int


def train_step(
    experiment: "Experiment", batch: Batch, shard: Shard = WHOLE, step: int = 0
) -> StepLosses:
    """Train on `batch` (this process's `shard` of the step's global batch) once; `step` is the
    run's step count, for measurements taken every so many steps (task affinity)."""
    model, optimizer, weighting = experiment.model, experiment.optimizer, experiment.weighting
    tasks = experiment.loss_tasks
    inputs = experiment.model_inputs(batch.inputs)
    affinity = experiment.affinity
    # The lookahead of a measured step replays the random draws (dropout, a VAE's sample) of
    # this forward pass.
    draws = affinity.draws(step) if affinity is not None else None
    # Under DDP with missing targets: each task's loss scaled to its part of the whole batch's.
    shard, counts = shard.labelled(example_counts(tasks, batch, shard))
    with experiment.autocast:
        output = experiment.forward(inputs)
        losses = experiment.task_losses(output, batch, shard.loss_scales)
    # A task not trained on in this epoch (two-stage training) keeps its place in the list,
    # detached, so that weightings and logs see the same tasks every epoch.
    losses = [
        loss if model.trains(task.name) else loss.detach()
        for task, loss in zip(tasks, losses, strict=True)
    ]
    if affinity is not None:
        affinity.measure(step, losses, inputs, batch, draws, shard)
    optimizer.zero_grad(set_to_none=True)
    total = weighting.backward(losses, output, shard)
    if step == 0:  # once per run: a plug-in's weighting that breaks its contract is one line
        experiment.check_first_backward(losses, total)
    shard.reduce_gradients(p for group in optimizer.param_groups for p in group["params"])
    if experiment.trainer.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(model.parameters(), experiment.trainer.grad_clip)
    optimizer.step()
    weighting.after_step(partial(experiment.losses_on, inputs, batch, shard.loss_scales), shard)
    if experiment.scheduler is not None:
        experiment.scheduler.step()
    with torch.no_grad():
        values = torch.stack([total, *losses]).float()
    return StepLosses(values, counts)


def example_counts(tasks: list["Task"], batch: Batch, shard: Shard) -> Tensor | int:
    """The examples each of a step's losses is a mean over: the batch's rows for the total,
    each task's rows with a target for the task's loss; 0 for a stand-in row, in the same form
    as on the other ranks (a tensor where targets may be missing)."""
    n = len(batch)
    counts = [task.example_count(batch) for task in tasks]
    if all(not isinstance(count, Tensor) and count == n for count in counts):
        return n if shard.has_rows else 0
    device = batch.inputs.device
    rows = torch.full((), n, device=device)

    def as_tensor(count: Tensor | int) -> Tensor:
        if isinstance(count, Tensor):
            return count
        return rows if count == n else torch.full((), count, device=device)

    stacked = torch.stack([rows, *map(as_tensor, counts)])
    return stacked if shard.has_rows else torch.zeros_like(stacked)
