"""Uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to
Weigh Losses for Scene Geometry and Semantics", CVPR 2018)."""

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from mtlrun.config import parse
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, Weighting, WeightingConfig, total_loss


@WEIGHTINGS.register("uncertainty")
class UncertaintyWeighting(Weighting):
    """L = Σ_t exp(−s_t)·L_t + s_t, with a learnt log-variance s_t = log σ_t² per task.

    This is twice Kendall et al.'s Gaussian form ½·exp(−s_t)·L_t + ½·s_t (their eq. 5 with
    s = log σ²), the convention LibMTL uses: the factor scales the whole objective, not the
    balance (for a fixed L_t both are smallest at s_t = log L_t, i.e. weight 1/L_t), and it
    makes every weight start at 1 (s_t = 0), as with `equal`. The noisier a task's loss stays,
    the larger s_t grows and the less the task weighs. Logged: the weights exp(−s_t).
    """

    def __init__(self, node: DictConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        parse(WeightingConfig, node, "weighting")
        self.log_variances = nn.Parameter(torch.zeros(len(tasks)))

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        precisions = torch.exp(-self.log_variances)
        total = total_loss(precisions, losses, output) + self.log_variances.sum()
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        weights = torch.exp(-self.log_variances.detach()).tolist()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
