"""PCGrad (Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020)."""

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import WeightingConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation


@WEIGHTINGS.register("pcgrad", schema=WeightingConfig)
class PCGradAggregation(GradientAggregation):
    """`weighting=pcgrad`, Yu et al. 2020, PCGrad (torchjd): each task's gradient loses its
    component along every other task gradient it conflicts with (negative inner product), in
    random order; the projected gradients are summed. On the shared parameters (needs a
    strategy that shares some)."""

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import PCGrad  # imported when chosen: torchjd loads cvxpy

        super().__init__(config.name, tasks, model, PCGrad)
