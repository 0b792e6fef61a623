"""PCD, Priority-Constrained Descent (Varam et al., "Not All Objectives Are Born Equal:
Priority-Constrained Descent for Hierarchical Multi-Objective Optimization", TMLR 2026)."""

from dataclasses import dataclass
from typing import Any

from mtlrun.errors import ConfigError
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation
from mtlrun.weighting.base import WEIGHTINGS, WeightingConfig

AVERAGE = "aggregator.gramian_weighting._sq_norm_ema"  # the EMA of ‖g_i‖², in the state dict


@dataclass
class PCDConfig(WeightingConfig):
    """`weighting=pcd`, Varam et al. 2026, PCD (torchjd): follow the primary task's gradient as
    closely as possible while every other task keeps a fraction τ of its own progress; on the
    shared parameters (needs a strategy that shares some)."""

    primary: str | None = None  # the primary task's name; null: the first task of `tasks`
    tau: float = 0.02  # the fraction of normalised first-order progress each other task keeps
    beta: float = 0.999  # the decay of the EMA of the squared gradient norms, in [0, 1)
    eps: float = 1e-8  # added to that EMA before its inverse square root


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
                f"{', '.join(names)}"
            )
        if not 0 <= config.tau <= 1 or not 0 <= config.beta < 1 or config.eps < 0:
            raise ConfigError(
                f"weighting.tau={config.tau} must lie in [0, 1], weighting.beta={config.beta} "
                f"in [0, 1) and weighting.eps={config.eps} must not be negative"
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
