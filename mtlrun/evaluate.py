"""Evaluation: metrics summed on the device over a whole split, read back once."""

from contextlib import AbstractContextManager

import torch

from mtlrun.data import Split
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task


@torch.inference_mode()
def evaluate(
    model: MultiTaskModel,
    tasks: list[Task],
    split: Split,
    name: str,
    batch_size: int,
    autocast: AbstractContextManager,
    final: bool = False,
) -> dict[str, float]:
    """`<name>/<task>/<metric>` means over `split`, plus `<name>/loss`, the weighted objective.
    With `final`, also each task's costlier end-of-training metrics (e.g. nll_iw)."""
    was_training = model.training
    model.eval()
    sums: dict[str, torch.Tensor] = {}
    auxiliary = torch.zeros((), device=split.inputs.device)

    def add(key: str, value: torch.Tensor) -> None:
        sums[key] = sums[key] + value.float() if key in sums else value.float()

    for batch in split.batches(batch_size):
        with autocast:
            output = model(batch.inputs)
        if output.auxiliary_loss is not None:
            auxiliary += output.auxiliary_loss.float() * len(batch)
        for task in tasks:
            if task.name not in output.predictions:
                continue
            prediction = output.predictions[task.name].float()
            encoding = output.encodings[task.name]
            for metric, value in task.metric_sums(prediction, encoding, batch).items():
                add(f"{task.name}/{metric}", value)
            if final:
                for metric, value in task.final_metric_sums(
                    model.head(task.name), encoding, batch
                ).items():
                    add(f"{task.name}/{metric}", value)
    model.train(was_training)
    n = len(split)
    loss = auxiliary / n
    for task in tasks:
        if task.has_loss:
            loss = loss + task.weight * sums[f"{task.name}/loss"] / n
    keys = ["loss", *sums]
    values = torch.stack([loss, *(value / n for value in sums.values())]).tolist()
    return {f"{name}/{key}": value for key, value in zip(keys, values, strict=True)}
