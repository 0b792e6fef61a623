"""IMTL-G (Liu et al., "Towards Impartial Multi-task Learning", ICLR 2021), in the form of
Quinton & Rey ("Jacobian Descent for Multi-Objective Optimization", 2024) that allows linearly
dependent gradients."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("imtl_g", schema=WeightingConfig)
class IMTLGAggregation(GradientAggregation):
    """`weighting=imtl_g`, Liu et al. 2021, IMTL-G (torchjd's `IMTLG`): the combination of the
    task gradients whose projections onto every task's unit gradient are equal, d·g_t/‖g_t‖ the
    same for each t (impartial: no task is favoured by its gradient's scale), with weights
    summing to 1. On the shared parameters (needs a strategy that shares some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import IMTLG  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, IMTLG)
