"""FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import FairGradConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("fairgrad", schema=FairGradConfig)
class FairGradAggregation(GradientAggregation):
    """Algorithm 1: the update d = Σ_t w_t g_t with weights solving G w = w^(-1/α) (G = J Jᵀ, the
    power taken per element), the step that maximises Σ_t (g_tᵀd)^(1-α)/(1-α): each task's
    improvement is weighed by the α-fairness of resource allocation (torchjd's `FairGrad`,
    solved with scipy's least squares)."""

    def __init__(self, config: FairGradConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import FairGrad  # imported when chosen: torchjd loads cvxpy

        super().__init__(
            config.name,
            tasks,
            model,
            lambda: FairGrad(alpha=config.alpha, max_iters=config.max_iters),
        )
