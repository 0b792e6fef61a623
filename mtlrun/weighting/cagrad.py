"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021)."""

from dataclasses import dataclass

from mtlrun.errors import ConfigError
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation
from mtlrun.weighting.base import WEIGHTINGS, WeightingConfig


@dataclass
class CAGradConfig(WeightingConfig):
    """`weighting=cagrad`, Liu et al. 2021, CAGrad (torchjd; needs torchjd[cagrad]): the
    direction near the mean gradient that best improves the worst task, on the shared
    parameters (needs a strategy that shares some)."""

    c: float = 0.4  # radius of the ball around the mean gradient, relative to its norm; 0 = mean
    norm_eps: float = 0.0001  # guards the normalisation against division by zero


@WEIGHTINGS.register("cagrad", schema=CAGradConfig)
class CAGradAggregation(GradientAggregation):
    """The direction within a ball of radius c·‖g₀‖ around the average gradient g₀ that
    maximises the smallest improvement of any task (Algorithm 1); c = 0 is the average
    gradient, a larger c moves toward MGDA. Needs `torchjd[cagrad]` (cvxpy)."""

    def __init__(self, config: CAGradConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import CAGrad  # imported when chosen: torchjd loads cvxpy

        if config.c < 0 or config.norm_eps < 0:
            raise ConfigError(
                f"weighting.c={config.c} and weighting.norm_eps={config.norm_eps} "
                "must not be negative"
            )
        super().__init__(
            config.name, tasks, model, lambda: CAGrad(c=config.c, norm_eps=config.norm_eps)
        )
