"""Evaluation: metrics summed on the device over a whole split, read back once, and the check
that they are finite."""

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch

from mtlrun.data import Split
from mtlrun.distributed import Ranks
from mtlrun.errors import TrainingDiverged
from mtlrun.sharing.base import OWN_LOSS
from mtlrun.tasks import Task, check_metrics

if TYPE_CHECKING:
    from mtlrun.experiment import Experiment


@torch.inference_mode()
def evaluate(
    experiment: "Experiment",
    split: Split,
    name: str,
    final: bool = False,
    after_batch: Callable[[], None] | None = None,
):
    """`<name>/<task>/<metric>` means over `split`, plus `<name>/loss`, the weighted objective
    with fixed task weights. With `final`, also the costlier end-of-training metrics (nll_iw).
    `after_batch` is called after each batch (to honour a stop request: it may raise).
    Under DDP each rank evaluates its shard of every batch and the sums are reduced.
    A task's own modules besides its head (concat's autoencoders) report their loss as
    `<task>/autoencoder_loss`, a mean over every example. A task's metrics that are no means
    over examples (mIoU, a median) come from its `split_state`, accumulated over the split."""
    model, tasks, ranks = experiment.model, experiment.tasks, experiment.ranks
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    # Per task: the examples its metrics were summed over (fewer where targets are missing).
    counts = {task.name: torch.zeros((), device=split.inputs.device) for task in tasks}
    auxiliary = torch.zeros((), device=split.inputs.device)

    counted = 1.0  # 0 while the batch is a stand-in row (see `Ranks.shard`)

    def add(key: str, value: torch.Tensor) -> None:
        value = value.float() * counted
        sums[key] = sums[key] + value if key in sums else value

    states = {task.name: SplitState(task) for task in tasks}

    for global_batch in split.batches(experiment.trainer.eval_batch_size):
        batch, shard = ranks.shard(global_batch)
        counted = float(shard.has_rows)
        with experiment.autocast:
            output = model(experiment.model_inputs(batch.inputs))
        if output.auxiliary_loss is not None:
            auxiliary += output.auxiliary_loss.float() * len(batch) * counted
        for task_name, own_loss in output.own_losses.items():
            add(f"{task_name}/{OWN_LOSS}", own_loss.sum())
        for task in tasks:
            if task.name not in output.predictions:
                continue
            prediction = output.predictions[task.name].float()
            encoding = output.encodings[task.name]
            counts[task.name] += task.example_count(batch) * counted
            for metric, value in task.metric_sums(prediction, encoding, batch).items():
                add(f"{task.name}/{metric}", value)
            if counted:
                states[task.name].add(task.split_state(prediction, encoding, batch))
            if final:
                head = model.head(task.name)
                for metric, value in task.final_metric_sums(head, encoding, batch).items():
                    add(f"{task.name}/{metric}", value)
        if after_batch is not None:
            after_batch()
    model.train(was_training)
    for task in tasks:
        reported = {key.split("/", 1)[1] for key in sums if key.startswith(f"{task.name}/")}
        if reported - {OWN_LOSS}:  # the tasks the model predicts
            check_metrics(task, reported - {OWN_LOSS})
    added = [tensor for state in states.values() for tensor in state.added.values()]
    ranks.reduce_sum([*sums.values(), *counts.values(), auxiliary, *added])
    means = {
        key: value
        / (len(split) if key.endswith(OWN_LOSS) else counts[key.split("/")[0]].clamp(min=1))
        for key, value in sums.items()
    }
    for task in tasks:
        for metric, value in states[task.name].metrics(ranks).items():
            means[f"{task.name}/{metric}"] = value
    loss = auxiliary / len(split)
    for task in experiment.loss_tasks:
        own = means.get(f"{task.name}/{OWN_LOSS}", 0.0)
        loss = loss + task.weight * (means[f"{task.name}/loss"] + own)
    keys = ["loss", *means]
    values = torch.stack([loss, *means.values()]).tolist()
    return {f"{name}/{key}": value for key, value in zip(keys, values, strict=True)}


class SplitState:
    """A task's `split_state` over a split's batches: the tensors it adds up, and the pieces of
    those it joins (`Task.joined`)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.added: dict[str, torch.Tensor] = {}
        self.pieces: dict[str, list[torch.Tensor]] = {}

    def add(self, state: dict[str, torch.Tensor]) -> None:
        for key, value in state.items():
            if key in self.task.joined:
                self.pieces.setdefault(key, []).append(value)
            else:
                self.added[key] = self.added[key] + value if key in self.added else value

    def metrics(self, ranks: Ranks) -> dict[str, torch.Tensor]:
        """The task's `split_metrics` of the whole split; under DDP, of every rank's batches
        (the added tensors already reduced, the joined ones gathered here)."""
        if not self.added and not self.pieces:
            return {}
        joined = {}
        for key, pieces in self.pieces.items():
            local = torch.cat(pieces)
            if ranks.distributed:
                local = torch.cat([part.to(local.device) for part in ranks.gather(local.cpu())])
            joined[key] = local
        return self.task.split_metrics({**self.added, **joined})


# What to do when training diverges.
DIVERGENCE_ADVICE = "lower optim.lr, set trainer.grad_clip (e.g. 1.0) or use trainer.precision=fp32"


def check_finite(metrics: dict[str, float], when: str) -> None:
    """A NaN or infinite metric ends the run as failed: it would otherwise select best.pt,
    reach summary.json and compare as a number in reports."""
    for key, value in metrics.items():
        if not math.isfinite(value):
            raise TrainingDiverged(f"{key} is {value} {when}; {DIVERGENCE_ADVICE}")
