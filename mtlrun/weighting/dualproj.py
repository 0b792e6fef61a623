"""DualProj (the projection of Lopez-Paz & Ranzato, "Gradient Episodic Memory for Continual
Learning", NeurIPS 2017, eq. 11, applied to the mean task gradient, as Quinton & Rey 2024
define it)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("dualproj", schema=WeightingConfig)
class DualProjAggregation(GradientAggregation):
    """`weighting=dualproj` (torchjd's `DualProj`): the mean task gradient, projected onto the
    dual cone of the task gradients (the closest vector with a non-negative inner product with
    each of them, GEM's eq. 11): the mean itself when it conflicts with no task. On the shared
    parameters (needs a strategy that shares some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import DualProj  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, DualProj)
