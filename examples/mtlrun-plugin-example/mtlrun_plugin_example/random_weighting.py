"""`weighting=random_weighting`: Random Loss Weighting (RLW) of Lin, Ye, Xu, Shi & Zhang,
"Reasonable Effectiveness of Random Weighting: A Litmus Test for Multi-Task Learning", TMLR 2022.

Every training step draws fresh weights w = softmax(λ) with λ ~ N(0, I_T) over the T tasks
(the paper's standard-normal variant, as LibMTL's `RLW`:
`batch_weight = F.softmax(torch.randn(self.task_num), dim=-1)`) and descends
L = Σ_t w_t L_t (plus the model's auxiliary loss, the penalties that belong to no task).
The weights are positive and sum to 1; in expectation every task weighs the same.

The draw uses torch's global CPU generator, whose state mtlrun saves in every checkpoint and
seeds from `seed`, so a resumed or reproduced run draws the same weights, and a CUDA run the
same weights as a CPU one. Logged: the weights of the epoch's last step.
"""

import torch
from torch import Tensor

from mtlrun import register
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting import Weighting, total_loss


def draw_weights(num_tasks: int) -> Tensor:
    """softmax(λ), λ ~ N(0, I): one draw from torch's global (CPU) generator."""
    return torch.softmax(torch.randn(num_tasks), dim=0)


@register.weighting("random_weighting", schema=WeightingConfig)
class RandomLossWeighting(Weighting):
    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        # A buffer: on the model's device (copied into without a host sync) and in checkpoints.
        self.register_buffer("last_weights", torch.full((len(tasks),), 1 / len(tasks)))

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        weights = draw_weights(len(losses))
        if self.last_weights.is_cuda:  # pinned, so the copy does not wait for the device
            weights = weights.pin_memory()
        self.last_weights.copy_(weights, non_blocking=True)
        total = total_loss(self.last_weights, losses, output)
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        weights = self.last_weights.tolist()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
