"""Dynamic Weight Average (Liu, Johns & Davison, "End-to-End Multi-Task Learning with
Attention", CVPR 2019)."""

import torch
from torch import Tensor

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import DWAConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import Weighting, total_loss


@WEIGHTINGS.register("dwa", schema=DWAConfig)
class DynamicWeightAverage(Weighting):
    """L = Σ_t w_t L_t with w_t(e) = T·exp(r_t/τ) / Σ_j exp(r_j/τ) in epoch e, where
    r_t = L_t(e−1) / L_t(e−2) is how slowly task t's mean training loss fell over the last
    two epochs (eq. 7): the task that learns slowest weighs most. w_t = 1 in epochs 1 and 2.
    The losses must stay positive for the ratios to mean that. Logged: the weights the epoch
    trained with (`end_epoch` has already made the next epoch's when the loop logs).

    The last two epochs' mean losses and the weights they give are buffers, so they are saved
    in checkpoints and a resumed run continues with the same weights. (torchjd's
    `scalarization.DWA` keeps its history outside the state dict and averages the batches
    itself; the loop already hands over exact epoch means.)
    """

    def __init__(self, config: DWAConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        self.temperature = config.temperature
        n = len(tasks)
        self.register_buffer("history", torch.full((2, n), float("nan")))  # L(e−2), L(e−1)
        self.register_buffer("weights", torch.ones(n))
        self.epoch_weights = [1.0] * n  # what the epoch just ended trained with, for the logs

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        total = total_loss(self.weights, losses, output)
        total.backward()
        return total.detach()

    def end_epoch(self, mean_losses: list[float]) -> None:
        self.epoch_weights = self.weights.tolist()
        latest = torch.tensor(mean_losses, dtype=self.history.dtype, device=self.history.device)
        self.history.copy_(torch.stack([self.history[1], latest]))
        if not self.history.isnan().any():
            rates = self.history[1] / self.history[0]
            self.weights.copy_(len(mean_losses) * torch.softmax(rates / self.temperature, dim=0))

    def logged(self) -> dict[str, float]:
        weights = self.epoch_weights
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
