"""Constant loss weights: `equal` (every task 1) and `fixed` (each task's `weight`)."""

from torch import Tensor

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

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        total = total_loss(self.weights, losses, output)
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
