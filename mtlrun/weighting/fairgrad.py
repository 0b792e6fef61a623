"""FairGrad (Ban & Ji, "Fair Resource Allocation in Multi-Task Learning", ICML 2024)."""

from dataclasses import dataclass

from mtlrun.errors import ConfigError
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation
from mtlrun.weighting.base import WEIGHTINGS, WeightingConfig


@dataclass
class FairGradConfig(WeightingConfig):
    """`weighting=fairgrad`, Ban & Ji 2024, FairGrad (torchjd; scipy): α-fair allocation of the
    update among the tasks; on the shared parameters (needs a strategy that shares some)."""

    # the fairness, above 0: 1 proportional fairness, 2 minimum potential delay, → ∞ max-min
    alpha: float = 1.0
    max_iters: int | None = None  # the least-squares solver's iterations; null = scipy's


@WEIGHTINGS.register("fairgrad", schema=FairGradConfig)
class FairGradAggregation(GradientAggregation):
    """Algorithm 1: the update d = Σ_t w_t g_t with weights solving G w = w^(-1/α) (G = J Jᵀ, the
    power taken per element), the step that maximises Σ_t (g_tᵀd)^(1-α)/(1-α): each task's
    improvement is weighed by the α-fairness of resource allocation (torchjd's `FairGrad`,
    solved with scipy's least squares)."""

    def __init__(self, config: FairGradConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import FairGrad  # imported when chosen: torchjd loads cvxpy

        if config.alpha <= 0 or (config.max_iters is not None and config.max_iters < 1):
            raise ConfigError(
                f"weighting.alpha={config.alpha} must be positive and weighting.max_iters="
                f"{config.max_iters} at least 1 (or null)"
            )
        super().__init__(
            config.name,
            tasks,
            model,
            lambda: FairGrad(alpha=config.alpha, max_iters=config.max_iters),
        )
