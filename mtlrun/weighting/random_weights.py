"""RLW, random loss weighting (Lin et al., "Reasonable Effectiveness of Random Weighting: A
Litmus Test for Multi-Task Learning", TMLR 2022)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("random", schema=WeightingConfig)
class RandomAggregation(GradientAggregation):
    """`weighting=random`, Lin et al. 2022, RLW (their Algorithm 2; torchjd's `Random`): each
    step, weights λ = softmax(z) with z drawn from a standard normal, and the update Σ_t λ_t g_t.
    The paper's baseline for every method that weighs tasks: a method that does not beat it
    has not shown its weighting matters. Drawn from the global generator (the run's seed). On
    the shared parameters (needs a strategy that shares some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import Random  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, Random)
