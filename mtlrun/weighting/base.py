"""The weighting interface: how the task losses become gradients."""

from dataclasses import dataclass

from torch import Tensor, nn

from mtlrun.registry import Registry
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task


class Weighting(nn.Module):
    """Turns the task losses of one step into gradients on the model's parameters.

    An nn.Module so that learnt weights (e.g. uncertainty's log-variances) are saved in
    checkpoints and trained by the optimiser (`extra_parameters`).
    """

    def __init__(self, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__()
        self.task_names = [task.name for task in tasks]

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        """Accumulate gradients into `.grad`; return the weighted total loss (for logging)."""
        raise NotImplementedError

    def end_epoch(self, mean_losses: list[float]) -> None:
        """Called with each task's mean training loss after every epoch (e.g. for DWA)."""

    def logged(self) -> dict[str, float]:
        """Per-task numbers to log each epoch, as `<task>/<name>` (e.g. `digit/weight`)."""
        return {}

    def extra_parameters(self) -> list[nn.Parameter]:
        return list(self.parameters())


@dataclass
class WeightingConfig:
    name: str


WEIGHTINGS: Registry[type[Weighting]] = Registry("weighting")


def total_loss(weights: list[float], losses: list[Tensor], output: ModelOutput) -> Tensor:
    """Σ_t w_t L_t plus the model's auxiliary loss (KL terms, sharing penalties)."""
    total = sum(w * loss for w, loss in zip(weights, losses, strict=True))
    if output.auxiliary_loss is not None:
        total = total + output.auxiliary_loss
    return total
