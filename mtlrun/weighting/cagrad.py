"""CAGrad (Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
NeurIPS 2021)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import CAGradConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("cagrad", schema=CAGradConfig)
class CAGradAggregation(GradientAggregation):
    """The direction within a ball of radius c·‖g₀‖ around the average gradient g₀ that
    maximises the smallest improvement of any task (Algorithm 1); c = 0 is the average
    gradient, a larger c moves toward MGDA. Needs `torchjd[cagrad]` (cvxpy)."""

    def __init__(self, config: CAGradConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import CAGrad  # imported when chosen: torchjd loads cvxpy

        super().__init__(
            config.name, tasks, model, lambda: CAGrad(c=config.c, norm_eps=config.norm_eps)
        )
