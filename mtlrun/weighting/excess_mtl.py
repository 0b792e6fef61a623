"""ExcessMTL (He et al., "Robust Multi-Task Learning with Excess Risks", ICML 2024)."""

from typing import Any

import torch

from mtlrun.errors import ConfigError
from mtlrun.parts import WEIGHTINGS
from mtlrun.schemas.weighting import ExcessMTLConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.aggregation import GradientAggregation

STATE = "aggregator.weighting."  # torchjd's ExcessMTLWeighting, in the state dict


@WEIGHTINGS.register("excess_mtl", schema=ExcessMTLConfig)
class ExcessMTLAggregation(GradientAggregation):
    """Each step, task i's excess risk is estimated as g_iᵀ H_i⁻¹ g_i (eq. 6), H_i the diagonal
    AdaGrad estimate √(Σ g_i²) of its Hessian (eq. 7), divided by its mean over the warm-up
    steps (the scale processing of Section 3.2), in which the weights stay 1/T; then the weights
    take an exponentiated-gradient step w ← w·exp(η_α Ê) / Σ (eq. 9), and the update is
    Σ_i w_i g_i (torchjd's `ExcessMTL`). The warm-up is at least the first step: torchjd's
    n_warmup_steps=0 would take that step with the raw, unscaled excess risks, which the
    authors' code and LibMTL do not.
    The weights, the sums of squared gradients, the baseline and the step count are saved in
    checkpoints, so a resumed run weighs as an uninterrupted one."""

    def __init__(self, config: ExcessMTLConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        from torchjd.aggregation import ExcessMTL  # imported when chosen: torchjd loads cvxpy

        if config.robust_step_size <= 0 or config.n_warmup_steps < 1:
            raise ConfigError(
                f"weighting.robust_step_size={config.robust_step_size} must be positive and "
                f"weighting.n_warmup_steps={config.n_warmup_steps} at least 1"
            )
        super().__init__(
            config.name,
            tasks,
            model,
            lambda: ExcessMTL(config.robust_step_size, config.n_warmup_steps),
        )

    def get_extra_state(self) -> dict[str, int]:
        # torchjd counts the steps in a plain int, outside the state dict; the warm-up needs it.
        return {"excess_mtl_steps": self.aggregator.weighting._n_steps}

    def set_extra_state(self, state: dict[str, int]) -> None:
        self.aggregator.weighting._n_steps = state["excess_mtl_steps"]

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        # torchjd makes its state at the first step, for the Jacobian's shape, dtype and device;
        # a resumed run needs it before loading, made as that first step would have made it.
        squares = state_dict.get(STATE + "_sq_grad_sum")
        if squares is not None:
            jacobian = torch.empty(squares.shape, dtype=squares.dtype, device=self.steps.device)
            self.aggregator.weighting._ensure_state(jacobian)
            if STATE + "_initial_w" in state_dict:  # past the warm-up: a baseline to load into
                self.aggregator.weighting._initial_w = jacobian.new_zeros(len(squares))
        return super().load_state_dict(state_dict, strict, assign)
