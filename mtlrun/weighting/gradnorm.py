"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in
Deep Multitask Networks", ICML 2018)."""

import torch
from torch import Tensor, nn

from mtlrun.distributed import WHOLE, Shard
from mtlrun.errors import ConfigError
from mtlrun.schemas.weighting import GradNormConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import (
    WEIGHTINGS,
    TaskIndex,
    Weighting,
    shared_representation,
    total_loss,
    trained_tasks,
)


@WEIGHTINGS.register("gradnorm", schema=GradNormConfig)
class GradNorm(Weighting):
    """L = Σ_t w_t L_t with learnt weights w_t that keep the tasks' gradient norms balanced.

    Each step, G_t = ‖∇_W w_t L_t‖ is the norm of the weighted task gradient, and the weights
    get the gradient of L_grad = Σ_t |G_t − Ḡ·r_t^α|, where Ḡ is the mean G_t, r_t the task's
    inverse training rate (L_t / L_t(0)) over its mean across tasks, and α the asymmetry. The
    target Ḡ·r_t^α is a constant, as in the paper. The weights are then renormalised to sum to
    T; the loop owns the optimiser step, so that happens at the start of the next step, before
    they are used.

    `weighting.gradient_of` says what W is. `last_shared_weights` (the default, the paper's
    choice, §3.1) is the parameters of the last layer every task's loss depends on, as the
    model names them (`MultiTaskModel.last_shared_parameters`); `representation` takes the
    gradients with respect to the shared representation h instead (`output.shared`, the cut the
    gradient aggregators use), which needs no knowledge of the layers. The two differ:
    ∇_W L_t = (∂h/∂W)ᵀ ∇_h L_t, and the same ∂h/∂W does not scale every task's ∇_h L_t alike
    (each example's h weighs by its input to the layer), so their norms can rank the tasks
    differently.

    The norms are taken without a graph (G_t is linear in w_t, so d G_t / d w_t = ‖∇_W L_t‖
    needs none) and L_grad is backpropagated into the weights alone; the model's gradients come
    from Σ_t w_t L_t with the weights detached, so the weights' own loss never reaches the model.
    """

    needs_shared_representation = True

    def __init__(self, config: GradNormConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        self.alpha = config.alpha
        self.gradient_of = config.gradient_of
        # A plain list, not registered: the model's parameters are saved with the model.
        self.last_shared = model.last_shared_parameters()
        if self.gradient_of == "last_shared_weights" and not self.last_shared:
            raise ConfigError(
                "weighting=gradnorm with weighting.gradient_of=last_shared_weights needs a layer "
                "all tasks share, and this sharing strategy has none; use "
                "weighting.gradient_of=representation or sharing=hard, cross_stitch or concat"
            )
        self.weights = nn.Parameter(torch.ones(len(tasks)))
        # L_t(0), taken at the first step (NaN until then, so no flag needs a host sync).
        self.register_buffer("initial_losses", torch.full((len(tasks),), float("nan")))
        self.index = TaskIndex()

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        if self.gradient_of == "representation":
            at = [f for f in shared_representation(output, "gradnorm") if f.requires_grad]
        else:  # a frozen layer (two-stage training's stage 2) has no gradient to measure
            at = [p for p in self.last_shared if p.requires_grad]
        with torch.no_grad():
            self.weights.mul_(len(losses) / self.weights.sum())
        current = torch.stack([loss.detach().float() for loss in losses])
        shard.reduce_shared([current])  # under DDP: the whole batch's losses
        unseen = self.initial_losses.isnan()
        self.initial_losses.copy_(torch.where(unseen, current, self.initial_losses))
        rows = trained_tasks(losses)
        if rows and at:
            index = self.index(rows, self.weights.device)
            of_examples = self.gradient_of == "representation"
            norms = torch.stack([gradient_norm(losses[t], at, shard, of_examples) for t in rows])
            weighted_norms = self.weights[index] * norms
            ratios = current[index] / self.initial_losses[index]
            targets = weighted_norms.mean().detach() * (ratios / ratios.mean()) ** self.alpha
            (weighted_norms - targets).abs().sum().backward(inputs=[self.weights])
        total = total_loss(self.weights.detach(), losses, output)
        total.backward()
        return total.detach()

    def logged(self) -> dict[str, float]:
        weights = (len(self.task_names) * self.weights / self.weights.sum()).detach().tolist()
        return {f"{name}/weight": w for name, w in zip(self.task_names, weights, strict=True)}


def gradient_norm(loss: Tensor, inputs: list[Tensor], shard: Shard, of_examples: bool) -> Tensor:
    """‖∇ loss‖ over all `inputs` (a task may not read all of them: a VAE's log-variance).
    Under DDP, of the whole batch's loss: gradients on parameters are reduced as such; the
    representation (`of_examples`) has one row per example, so the ranks' rows together are the
    whole gradient, each scaled by its shard's share, and their squared norms add up."""
    grads = [
        g.float()
        for g in torch.autograd.grad(loss, inputs, retain_graph=True, materialize_grads=True)
    ]
    if of_examples:
        square = torch.stack([g.pow(2).sum() for g in grads]).sum() * shard.share**2
        shard.reduce_sum([square])
        return square.sqrt()
    shard.reduce_shared(grads)
    return torch.stack([g.pow(2).sum() for g in grads]).sum().sqrt()
