"""ExcessMTL (He et al., "Robust Multi-Task Learning with Excess Risks", ICML 2024)."""

from typing import Any

import torch
from torch import Tensor

from mtlrun.distributed import Shard
from mtlrun.schemas.weighting import ExcessMTLConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, MeasuredWeighting, flat_gradients, parameters_behind

STATE = "aggregator.weighting."  # torchjd's ExcessMTLWeighting, in the state dict


@WEIGHTINGS.register("excess_mtl", schema=ExcessMTLConfig)
class ExcessMTLWeighting(MeasuredWeighting):
    """L = Σ_i w_i L_i plus the auxiliary loss, backpropagated through the whole network (heads
    included), with weights w from the excess risks: a loss weighting, as in the authors' code
    and LibMTL (which weigh the loss, not the shared parameters' gradients alone).

    Each step, with g_i the gradient of task i's loss on the shared parameters (a backward pass
    per task, as LibMTL's), task i's excess risk is estimated as g_iᵀ H_i⁻¹ g_i (eq. 6), H_i the
    diagonal AdaGrad estimate √(Σ g_i²) of its Hessian (eq. 7), divided by its mean over the
    warm-up steps (the scale processing of Section 3.2), in which the weights stay uniform; then
    the weights take an exponentiated-gradient step w ← w·exp(η_α Ê) / Σ (eq. 9; torchjd's
    `ExcessMTLWeighting`, in log space). The weights lie on the simplex, as the paper's; with
    `weights_sum_to=tasks` they are T times those, LibMTL's. The warm-up is at least the first
    step: torchjd's n_warmup_steps=0 would take that step with the raw, unscaled excess risks,
    which the authors' code and LibMTL do not.

    Under DDP the per-task gradients are reduced over the ranks before they are measured, so
    every rank weighs as on the whole batch. With fewer than two tasks trained on, the step is a
    plain backward. The weights, the sums of squared gradients, the baseline and the step count
    are saved in checkpoints, so a resumed run weighs as an uninterrupted one. Logged per task:
    w_i averaged over the epoch's steps."""

    method = "excess_mtl"

    def __init__(self, config: ExcessMTLConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        from torchjd.aggregation import ExcessMTL  # imported when chosen: torchjd loads cvxpy

        self.aggregator = ExcessMTL(config.robust_step_size, config.n_warmup_steps)
        self.weights_sum_to = config.weights_sum_to
        self.shared_parameters: list[Tensor] | None = None  # found at the first step

    def measure(self, losses: list[Tensor], shared: list[Tensor], shard: Shard) -> Tensor:
        """The excess-risk weights, from the tasks' gradients on the shared parameters."""
        if self.shared_parameters is None:
            self.shared_parameters = parameters_behind(shared)
        jacobian = flat_gradients(losses, self.shared_parameters)
        shard.reduce_shared([jacobian])  # under DDP: the whole batch's gradients
        weights = self.aggregator.weighting(jacobian)
        return weights * len(losses) if self.weights_sum_to == "tasks" else weights

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
