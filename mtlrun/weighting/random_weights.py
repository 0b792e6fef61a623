"""RLW, random loss weighting (Lin et al., "Reasonable Effectiveness of Random Weighting: A
Litmus Test for Multi-Task Learning", TMLR 2022)."""

import torch
from torch import Tensor

from mtlrun.distributed import WHOLE, Shard
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, Weighting, WeightingConfig, total_loss


@WEIGHTINGS.register("random", schema=WeightingConfig)
class RandomLossWeighting(Weighting):
    """`weighting=random`, Lin et al. 2022, RLW: each step, weights λ = softmax(z) with z drawn
    from a standard normal (their Algorithm 1 with the normal distribution, LibMTL's default),
    and L = Σ_t λ_t L_t plus the auxiliary loss, backpropagated through the whole network:
    a loss weighting, so every head is trained on its own loss times λ_t, as in the paper and
    LibMTL's `RLW` (an aggregator would weigh the shared parameters' gradients only). The
    paper's baseline for every method that weighs tasks: a method that does not beat it has not
    shown its weighting matters.

    Drawn from the global generator of the losses' device (the run's seed), so under DDP every
    rank draws the same λ. Logged per task: λ_t averaged over the epoch's steps."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        # Summed on the device and read once per epoch; saved in checkpoints.
        self.register_buffer("weight_sums", torch.zeros(len(tasks)))
        self.register_buffer("steps", torch.zeros(()))

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        device = self.weight_sums.device
        weights = torch.softmax(torch.randn(len(losses), device=device), dim=0)
        self.weight_sums += weights
        self.steps += 1
        total = total_loss(weights, losses, output)
        if total.requires_grad:
            total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        weights = (self.weight_sums / self.steps.clamp(min=1)).tolist()
        self.weight_sums.zero_()
        self.steps.zero_()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
