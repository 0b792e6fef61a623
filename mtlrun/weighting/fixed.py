"""Constant loss weights: `equal` (every task 1) and `fixed` (each task's `weight`)."""

import torch
from torch import Tensor

from mtlrun.distributed import WHOLE, Shard
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import Weighting, total_loss


@WEIGHTINGS.register("fixed", schema=WeightingConfig)
class FixedWeighting(Weighting):
    """`weighting=fixed`: L = Σ_t w_t L_t, the sum of the task losses times their weights
    `tasks.<name>.weight`."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        self.weights = [task.weight for task in tasks]
        # On the model's device with the module (`build` moves it), not copied there each step;
        # not saved, since the config holds them. None when all are 1: nothing to multiply.
        ones = all(w == 1 for w in self.weights)
        self.register_buffer(
            "weight_vector", None if ones else torch.tensor(self.weights), persistent=False
        )

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        total = total_loss(self.weight_vector, losses, output)
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        return {f"{name}/weight": w for name, w in zip(self.task_names, self.weights, strict=True)}


@WEIGHTINGS.register("equal", schema=WeightingConfig)
class EqualWeighting(FixedWeighting):
    """`weighting=equal`: L = Σ_t L_t, the sum of the task losses (every weight 1), whatever
    the tasks' `weight` says."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(config, tasks, model)
        self.weights = [1.0] * len(tasks)
        self.weight_vector = None
