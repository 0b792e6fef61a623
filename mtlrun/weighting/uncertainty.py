"""Uncertainty weighting (Kendall, Gal & Cipolla, "Multi-Task Learning Using Uncertainty to
Weigh Losses for Scene Geometry and Semantics", CVPR 2018)."""

import torch
from torch import Tensor, nn

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import Weighting, total_loss


@WEIGHTINGS.register("uncertainty", schema=WeightingConfig)
class UncertaintyWeighting(Weighting):
    """`weighting=uncertainty`, Kendall et al. 2018: L = Σ_t exp(−s_t)·L_t + s_t, with a learnt
    log-variance s_t = log σ_t² per task (their §3.2: s is learnt rather than σ², for numerical
    stability), every s_t starting at 0: twice their Gaussian (regression) term for every task,
    classification included.

    Kendall et al. derive a different term for each kind of likelihood: ½σ⁻²·L + log σ for a
    Gaussian (regression) task (eq. 7), i.e. ½·exp(−s)·L + ½·s, and σ⁻²·L + log σ for a softmax
    (classification) task (eq. 10, after their approximation), i.e. exp(−s)·L + ½·s. mtlrun uses
    one form for every task, whatever its likelihood:
    - for a regression task it is exactly twice Kendall's term, at the same s;
    - for a classification task it is twice Kendall's term at s + log 2 (σ² twice as large),
      less the constant log 2: the same term, its variable shifted.
    So at the s that minimises each term for a given L_t, every task's loss weighs 1/L_t here and
    1/(2·L_t) in Kendall's eq. 10: the same balance between tasks, the whole objective doubled
    (which changes SGD's step size, not Adam's). What differs is the path there: here every
    weight starts at 1; Kendall's terms at s = 0 weigh a regression loss ½ and a classification
    loss 1.

    LibMTL's `UW` uses Kendall's regression form for every task, ½·exp(−s)·L + ½·s (half of
    this), starting from s = −0.5 (weights ½·e^0.5 ≈ 0.82). The noisier a task's loss stays, the
    larger s_t grows and the less the task weighs. Logged: the weights exp(−s_t).
    """

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        self.log_variances = nn.Parameter(torch.zeros(len(tasks)))

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        precisions = torch.exp(-self.log_variances)
        total = total_loss(precisions, losses, output) + self.log_variances.sum()
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        weights = torch.exp(-self.log_variances.detach()).tolist()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
