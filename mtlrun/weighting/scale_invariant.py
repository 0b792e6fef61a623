"""Scale-invariant weighting: Σ_t log L_t (the SI baseline of Navon et al., "Multi-Task Learning
as a Bargaining Game", ICML 2022)."""

import torch
from torch import Tensor

from mtlrun.errors import TrainingDiverged
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, Weighting, total_loss, unweighted_total


@WEIGHTINGS.register("scale_invariant", schema=WeightingConfig)
class ScaleInvariant(Weighting):
    """`weighting=scale_invariant`: L = Σ_t log L_t plus the auxiliary loss, whose gradient
    Σ_t ∇L_t / L_t is the same whatever constant multiplies a task's loss (Navon et al. 2022's
    scale-invariant baseline, `ScaleInvariantLinearScalarization` in their code); each task
    weighs as 1 / L_t. Needs positive losses (a Gaussian likelihood can be negative): a loss at
    or below 0 ends the run at the end of its epoch, in one line. Logged per task: the mean
    effective weight 1 / L_t. The total returned for the logs is Σ_t L_t (+ auxiliary)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        n = len(tasks)
        # Summed over the epoch on the device and read once in `logged` (no host sync per step).
        self.register_buffer("weight_sums", torch.zeros(n))
        self.register_buffer("not_positive", torch.zeros(n))
        self.register_buffer("steps", torch.zeros(()))

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        values = torch.stack([loss.detach().float() for loss in losses])
        self.ranks.reduce_shared([values])  # under DDP: the whole batch's losses
        self.not_positive += (values <= 0).float()
        weights = 1 / values
        self.weight_sums += weights
        self.steps += 1
        # ∇ log L_t = ∇L_t / L_t: the weights detached give the log's gradient, and under DDP
        # they are the whole batch's, so the ranks' gradients add up to one process's.
        total = total_loss(weights, losses, output)
        if total.requires_grad:
            total.backward()
        return unweighted_total(losses, output)

    def logged(self) -> dict[str, float]:
        not_positive = self.not_positive.tolist()
        for name, count in zip(self.task_names, not_positive, strict=True):
            if count:
                raise TrainingDiverged(
                    f"weighting=scale_invariant takes the log of each task's loss, but task "
                    f"{name}'s loss was 0 or below in {int(count)} steps; use it with positive "
                    "losses (cross-entropy, BCE, MSE), or another weighting"
                )
        weights = (self.weight_sums / self.steps.clamp(min=1)).tolist()
        self.weight_sums.zero_()
        self.steps.zero_()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
