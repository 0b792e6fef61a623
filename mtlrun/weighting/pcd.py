"""PCD, Priority-Constrained Descent (Varam et al., "Not All Objectives Are Born Equal:
Priority-Constrained Descent for Hierarchical Multi-Objective Optimization", TMLR 2026)."""

from typing import Any

from mtlrun.errors import ConfigError, listed
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import PCDConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation

AVERAGE = "aggregator.gramian_weighting._sq_norm_ema"  # the EMA of ‖g_i‖², in the state dict


@WEIGHTINGS.register("pcd", schema=PCDConfig)
class PCDAggregation(GradientAggregation):
    """With g̃_i = g_i / √(v̂_i + ε), v̂_i the bias-corrected EMA of ‖g_i‖²: the update is
    argmin_d ½‖d − g̃_1‖² subject to g̃_jᵀd ≥ τ‖g̃_j‖² for every other task j, rescaled to ‖g_1‖
    (task 1 the primary; the constraints dropped when they cannot all hold). torchjd's `PCD`
    solves the quadratic program exactly (Goldfarb & Idnani's dual active set). Not symmetric
    in the tasks: the primary task's row goes first in the Jacobian. The EMA is saved in
    checkpoints, so a resumed run normalises as an uninterrupted one."""

    def __init__(self, config: PCDConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import PCD  # imported when chosen: torchjd loads cvxpy

        names = [task.name for task in tasks]
        if config.primary is not None and config.primary not in names:
            raise ConfigError(
                f"weighting.primary={config.primary!r} is not a task; choose one of: "
                f"{listed(names)}"
            )
        super().__init__(
            config.name,
            tasks,
            model,
            lambda: PCD(tau=config.tau, beta=config.beta, eps=config.eps),
        )
        self.primary = names.index(config.primary) if config.primary is not None else 0

    def row_order(self, rows: list[int]) -> list[int]:
        if self.primary not in rows:
            return rows
        return [self.primary, *(t for t in rows if t != self.primary)]

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # torchjd makes the EMA at the first step; a resumed run needs it before loading.
        average = state_dict.get(AVERAGE)
        if average is not None:
            self.aggregator.gramian_weighting._ensure_state(len(average))
        return super().load_state_dict(state_dict, strict, assign)
