"""UPGrad (Quinton & Rey, "Jacobian Descent for Multi-Objective Optimization", 2024)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("upgrad", schema=WeightingConfig)
class UPGradAggregation(GradientAggregation):
    """`weighting=upgrad`, Quinton & Rey 2024, UPGrad (torchjd; needs
    torchjd[quadprog-projector]): each task's gradient is projected onto the dual cone of all
    task gradients and the projections are averaged: the update never conflicts with any task
    (a non-negative inner product with every task gradient). On the shared parameters (needs a
    strategy that shares some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import UPGrad  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, UPGrad)
