"""GradVac, Gradient Vaccine (Wang et al., "Gradient Vaccine: Investigating and Improving
Multi-task Optimization in Massively Multilingual Models", ICLR 2021)."""

from typing import Any

from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import GradVacConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation

TARGETS = "aggregator.gramian_weighting._phi_t"  # the EMA targets φ̂, in the state dict


@WEIGHTINGS.register("gradvac", schema=GradVacConfig)
class GradVacAggregation(GradientAggregation):
    """Their Algorithm 1, on one parameter group (all the shared parameters: the paper's
    "whole model" granularity). For each task i and each other task j (in random order), φ_ij is
    the cosine of g_i (as corrected so far) with g_j; when φ_ij is below the target φ̂_ij, g_i
    gains the multiple of g_j that brings the cosine to φ̂_ij (their eq. 3); then, corrected or
    not, φ̂_ij ← (1 − β) φ̂_ij + β φ_ij (eq. 4; Algorithm 1 updates the target after its `if`, so
    the target tracks every step's cosine). The update is the sum of the corrected gradients.
    The targets start at 0, where the correction is PCGrad's projection; they are saved in
    checkpoints, so a resumed run corrects as an uninterrupted one (torchjd's `GradVac`).

    LibMTL's `GradVac` updates φ̂_ij only inside the correction branch, so a pair that agrees
    more than its target leaves the target where it was; here it moves toward that cosine, as
    the paper's algorithm does."""

    def __init__(self, config: GradVacConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import GradVac  # imported when chosen: torchjd loads cvxpy

        super().__init__(
            config.name, tasks, model, lambda: GradVac(beta=config.beta, eps=config.eps)
        )

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # torchjd makes the targets at the first step; a resumed run needs them before loading.
        targets = state_dict.get(TARGETS)
        if targets is not None:
            self.aggregator.gramian_weighting._ensure_state(len(targets), targets.dtype)
        return super().load_state_dict(state_dict, strict, assign)
