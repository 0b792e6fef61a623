"""Constant loss weights: `equal` (every task 1) and `fixed` (each task's `weight`)."""

from omegaconf import DictConfig
from torch import Tensor

from mtlrun.config import parse
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, Weighting, WeightingConfig, total_loss


@WEIGHTINGS.register("fixed")
class FixedWeighting(Weighting):
    """L = Σ_t w_t L_t with the weights in `tasks.<name>.weight`."""

    def __init__(self, node: DictConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        parse(WeightingConfig, node, "weighting")
        self.weights = [task.weight for task in tasks]

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        total = total_loss(self.weights, losses, output)
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        return {f"{name}/weight": w for name, w in zip(self.task_names, self.weights, strict=True)}


@WEIGHTINGS.register("equal")
class EqualWeighting(FixedWeighting):
    """L = Σ_t L_t, whatever the tasks' `weight` says."""

    def __init__(self, node: DictConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(node, tasks, model)
        self.weights = [1.0] * len(tasks)
