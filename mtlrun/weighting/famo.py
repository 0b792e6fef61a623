"""FAMO (Liu et al., "FAMO: Fast Adaptive Multitask Optimization", NeurIPS 2023)."""

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.distributed import WHOLE, Shard
from mtlrun.schemas.weighting import FAMOConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import (
    WEIGHTINGS,
    Weighting,
    total_loss,
    unweighted_total,
)


@WEIGHTINGS.register("famo", schema=FAMOConfig)
class FAMO(Weighting):
    """Each step the model descends Σ_t z_t log(L_t + ε) / c, with c = Σ_t z_t / (L_t + ε)
    (Algorithm 1): its gradient is Σ_t (z_t / (c (L_t + ε))) ∇L_t, the weighted gradient of the
    log-losses, normalised. After the optimiser's step, the same batch's losses are computed
    again, and the logits ξ take an Adam step (lr β, weight decay γ) along
    ∂softmax(ξ)/∂ξ ᵀ δ, δ_t = log(L_t + ε) − log(L_t' + ε) the decrease of each log-loss: the
    tasks that improved least gain weight. As in the authors' code, the minimum losses are 0
    and each step costs one more forward pass (no backward). The authors' class also clips the
    shared parameters' gradient norm to 1; here clipping is `trainer.grad_clip`'s, as for every
    method.

    The model's gradient comes from Σ_t w_t L_t with the weights w_t = z_t / (c (L_t + ε))
    detached (the same gradient as the log form), so that under DDP the weights are of the whole
    batch's losses. Logged per task: z_t averaged over the epoch. The total returned for the logs
    is Σ_t L_t plus the auxiliary loss."""

    def __init__(self, config: FAMOConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        self.epsilon = config.epsilon
        self.logits = nn.Parameter(torch.zeros(len(tasks)))
        self.logit_optimizer = torch.optim.Adam(
            [self.logits], lr=config.w_lr, weight_decay=config.gamma
        )
        self.register_buffer("losses_before", torch.zeros(len(tasks)))
        self.register_buffer("weight_sums", torch.zeros(len(tasks)))
        self.register_buffer("steps", torch.zeros(()))

    def extra_parameters(self) -> list[nn.Parameter]:
        return []  # the logits have their own optimiser

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        values = torch.stack([loss.detach().float() for loss in losses])
        shard.reduce_shared([values])  # under DDP: the whole batch's losses
        self.losses_before.copy_(values)
        z = F.softmax(self.logits.detach(), dim=0)
        shifted = values + self.epsilon
        c = (z / shifted).sum()
        weights = z / (c * shifted)
        self.weight_sums += z
        self.steps += 1
        total = total_loss(weights, losses, output)
        if total.requires_grad:
            total.backward()
        return unweighted_total(losses, output)

    def after_step(self, losses_after: Callable[[], list[Tensor]], shard: Shard = WHOLE) -> None:
        with torch.no_grad():
            values = torch.stack([loss.float() for loss in losses_after()])
        shard.reduce_shared([values])
        decrease = (self.losses_before + self.epsilon).log() - (values + self.epsilon).log()
        with torch.enable_grad():
            (direction,) = torch.autograd.grad(
                F.softmax(self.logits, dim=0), self.logits, grad_outputs=decrease
            )
        self.logit_optimizer.zero_grad()
        self.logits.grad = direction
        self.logit_optimizer.step()

    def get_extra_state(self) -> dict[str, Any]:
        return {"logit_optimizer": self.logit_optimizer.state_dict()}

    def set_extra_state(self, state: dict[str, Any]) -> None:
        self.logit_optimizer.load_state_dict(state["logit_optimizer"])

    def logged(self) -> dict[str, float]:
        weights = (self.weight_sums / self.steps.clamp(min=1)).tolist()
        self.weight_sums.zero_()
        self.steps.zero_()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}
