"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning",
CVPR 2023)."""

from mtlrun.config import check_choice
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import SCALE_MODES, AlignedMTLConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("aligned_mtl", schema=AlignedMTLConfig)
class AlignedMTLAggregation(GradientAggregation):
    """Algorithm 1: with the Gramian G = J Jᵀ = V Λ Vᵀ, the aligned Jacobian
    Ĵ = σ V Λ^(-1/2) Vᵀ J has every singular value equal to σ (the smallest of J's by default),
    so no task's direction dominates by the scale of its gradient; the update is the mean of Ĵ's
    rows (torchjd's `AlignedMTL`)."""

    def __init__(self, config: AlignedMTLConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import AlignedMTL  # imported when chosen: torchjd loads cvxpy

        check_choice("weighting.scale_mode", config.scale_mode, SCALE_MODES)
        super().__init__(
            config.name, tasks, model, lambda: AlignedMTL(scale_mode=config.scale_mode)
        )
