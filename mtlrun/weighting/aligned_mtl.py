"""Aligned-MTL (Senushkin et al., "Independent Component Alignment for Multi-Task Learning",
CVPR 2023)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import AlignedMTLConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("aligned_mtl", schema=AlignedMTLConfig)
class AlignedMTLAggregation(GradientAggregation):
    """Algorithm 1: with the Gramian G = J Jᵀ = V Λ Vᵀ, the aligned Jacobian
    Ĵ = σ V Λ^(-1/2) Vᵀ J has every singular value equal to σ (the smallest of J's by default),
    so no task's direction dominates by the scale of its gradient; the update is Ĵᵀ w with the
    task weights w = 1, the sum of Ĵ's rows, as in the authors' code and LibMTL
    (`alpha = B.sum(0)`). torchjd's `AlignedMTL`, whose balance transformation this uses,
    defaults to w = 1/T, the mean: a step T times shorter under SGD."""

    def __init__(self, config: AlignedMTLConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        # imported when chosen: torchjd loads cvxpy
        from torchjd.aggregation import AlignedMTL, SumWeighting

        def summing_aligned_mtl() -> AlignedMTL:
            aggregator = AlignedMTL(scale_mode=config.scale_mode)
            # The weights w the balance transformation B turns into B w: torchjd's setter for
            # them (pref_vector) takes a fixed-length vector; the number of rows varies.
            aggregator.gramian_weighting.weighting = SumWeighting()
            return aggregator

        super().__init__(config.name, tasks, model, summing_aligned_mtl)
