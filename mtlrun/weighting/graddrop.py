"""GradDrop (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
Dropout", NeurIPS 2020)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("graddrop", schema=WeightingConfig)
class GradDropAggregation(GradientAggregation):
    """`weighting=graddrop`, Chen et al. 2020 (Algorithm 1, lines 10-15; torchjd's `GradDrop`):
    per coordinate of the shared parameters, the positive sign purity
    P = ½(1 + Σ_t g_t / Σ_t |g_t|) is the chance of keeping the tasks' positive components there,
    and the negative ones are kept otherwise; the update is the sum of what is kept, so each
    coordinate's update has one sign. Random (the global generator); no leak. On the shared
    parameters (needs a strategy that shares some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import GradDrop  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, GradDrop)
