"""ConFIG (Liu et al., "ConFIG: Towards Conflict-free Training of Physics Informed Neural
Networks", ICLR 2025)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("config", schema=WeightingConfig)
class ConFIGAggregation(GradientAggregation):
    """`weighting=config`, Liu et al. 2025, ConFIG (their eq. 2; torchjd's `ConFIG`): the
    direction that makes the same positive angle with every task gradient (the pseudo-inverse
    of the unit gradients applied to a vector of ones, normalised), scaled by the sum of the
    task gradients' projections onto it. On the shared parameters (needs a strategy that shares
    some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import ConFIG  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, ConFIG)
