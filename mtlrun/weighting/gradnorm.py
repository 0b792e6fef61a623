"""GradNorm (Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing in
Deep Multitask Networks", ICML 2018)."""

from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from torch import Tensor, nn

from mtlrun.config import parse
from mtlrun.errors import ConfigError
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import (
    WEIGHTINGS,
    TaskIndex,
    Weighting,
    WeightingConfig,
    shared_representation,
    total_loss,
    trained,
)


@dataclass
class GradNormConfig(WeightingConfig):
    alpha: float = 1.5  # asymmetry: how hard tasks that train slower are pulled up; 0 equalises


@WEIGHTINGS.register("gradnorm")
class GradNorm(Weighting):
    """L = Σ_t w_t L_t with learnt weights w_t that keep the tasks' gradient norms balanced.

    Each step, G_t = ‖∇_h w_t L_t‖ is the norm of the weighted task gradient, and the weights
    get the gradient of L_grad = Σ_t |G_t − Ḡ·r_t^α|, where Ḡ is the mean G_t, r_t the task's
    inverse training rate (L_t / L_t(0)) over its mean across tasks, and α the asymmetry. The
    target Ḡ·r_t^α is a constant, as in the paper. The weights are then renormalised to sum to
    T; the loop owns the optimiser step, so that happens at the start of the next step, before
    they are used.

    h is the shared representation (`output.shared`), where the paper takes the last shared
    layer's weights W: ∇_W L_t = (∂h/∂W)ᵀ ∇_h L_t, with the same ∂h/∂W for every task, so both
    compare the same task signals. h needs no knowledge of which module is the last shared
    layer (it works for every backbone and sharing strategy that fills `shared`), and its
    gradients cost a backward through the heads only.

    The norms are taken without a graph (G_t is linear in w_t, so d G_t / d w_t = ‖∇_h L_t‖
    needs none) and L_grad is backpropagated into the weights alone; the model's gradients come
    from Σ_t w_t L_t with the weights detached, so the weights' own loss never reaches the model.
    """

    needs_shared_representation = True

    def __init__(self, node: DictConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        config = parse(GradNormConfig, node, "weighting")
        if config.alpha < 0:
            raise ConfigError(f"weighting.alpha={config.alpha} must not be negative")
        self.alpha = config.alpha
        self.weights = nn.Parameter(torch.ones(len(tasks)))
        # L_t(0), taken at the first step (NaN until then, so no flag needs a host sync).
        self.register_buffer("initial_losses", torch.full((len(tasks),), float("nan")))
        self.index = TaskIndex()

    def backward(self, losses: list[Tensor], output: ModelOutput) -> Tensor:
        shared = [f for f in shared_representation(output, "gradnorm") if f.requires_grad]
        with torch.no_grad():
            self.weights.mul_(len(losses) / self.weights.sum())
        current = torch.stack([loss.detach().float() for loss in losses])
        unseen = self.initial_losses.isnan()
        self.initial_losses.copy_(torch.where(unseen, current, self.initial_losses))
        rows = trained(losses)
        if rows and shared:
            index = self.index(rows, self.weights.device)
            norms = torch.stack([gradient_norm(losses[t], shared) for t in rows])
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


def gradient_norm(loss: Tensor, features: list[Tensor]) -> Tensor:
    """‖∇ loss‖ over all `features` (a task may not read all of them: a VAE's log-variance)."""
    grads = torch.autograd.grad(loss, features, retain_graph=True, allow_unused=True)
    return torch.stack([g.float().pow(2).sum() for g in grads if g is not None]).sum().sqrt()
