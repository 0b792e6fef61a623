"""GradDrop (Chen et al., "Just Pick a Sign: Optimizing Deep Multitask Models with Gradient Sign
Dropout", NeurIPS 2020)."""

import torch
import torch.nn.functional as F
from torch import Tensor

from mtlrun.distributed import WHOLE, Shard
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import (
    WEIGHTINGS,
    TaskIndex,
    Weighting,
    WeightingConfig,
    epoch_means,
    parameters_behind,
    shared_representation,
    trained_tasks,
    unweighted_total,
)


@WEIGHTINGS.register("graddrop", schema=WeightingConfig)
class GradDrop(Weighting):
    """`weighting=graddrop`, Chen et al. 2020, Algorithm 1, on the activation layer the tasks
    share (`output.shared`, the representation before the heads), as the paper places it and
    LibMTL implements it (`rep_grad=True`).

    Each step, for the tasks trained on, with A the shared activations and ∂L_i/∂A each task's
    gradient on them: ∇_i = Σ_batch sign(A) ∘ ∂L_i/∂A (their "batch-separated" case), the
    positive sign purity P = ½(1 + Σ_i ∇_i / Σ_i |∇_i|) per coordinate of A (½ where no task
    has a gradient; LibMTL adds 1e-7 to the denominator instead), U uniform on [0, 1] per
    coordinate, and the masks M_i = 1[P > U] ∘ 1[∇_i > 0] + 1[P < U] ∘ 1[∇_i < 0], the same for
    every example of the batch. The gradient Σ_i M_i ∘ ∂L_i/∂A (f the identity, no leak: the
    paper's multi-task setting) is backpropagated from A through the shared layers, so each
    coordinate of A passes on one sign; the heads get their own task's gradient, unmasked.
    U comes from the global generator (the run's seed).

    The auxiliary loss (penalties that belong to no task) is backpropagated on its own,
    unmasked. With fewer than two tasks trained on, the step is a plain backward of their sum.
    Under DDP, the batch sums ∇_i are reduced over the ranks before P is formed, so every rank
    drops by the whole batch's purity. The total returned for the logs is the unweighted sum of
    the task losses plus the auxiliary loss. Logged each epoch, per task: the cosine between its
    gradient on A and the combined one, averaged over the steps it was trained on. A
    `torch.compile`d model is refused: its outputs hide A."""

    needs_shared_representation = True

    def __init__(self, config: WeightingConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        # A plain list, not a submodule: the model's parameters are saved with the model.
        self.model_parameters = list(model.parameters())
        self.head_parameters: list[Tensor] | None = None  # those not behind A, found once
        self.index = TaskIndex()
        # Summed on the device and read once per epoch; saved in checkpoints.
        self.register_buffer("cosine_sums", torch.zeros(len(tasks)))
        self.register_buffer("steps", torch.zeros(len(tasks)))

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        shared = [f for f in shared_representation(output, "graddrop") if f.requires_grad]
        rows = trained_tasks(losses)
        auxiliary = output.auxiliary_loss
        if auxiliary is not None and auxiliary.requires_grad:
            auxiliary.backward(retain_graph=bool(rows))
        if len(rows) > 1 and shared:
            if self.head_parameters is None:
                behind = {id(p) for p in parameters_behind(shared)}
                self.head_parameters = [
                    p for p in self.model_parameters if p.requires_grad and id(p) not in behind
                ]
            on_shared = self.task_gradients([losses[t] for t in rows], shared)
            combined = [
                self.drop(grads, f, shard) for grads, f in zip(on_shared, shared, strict=True)
            ]
            torch.autograd.backward(shared, combined)
            self.record_cosines(rows, on_shared, combined)
        elif rows:
            sum(losses[t] for t in rows).backward()
        return unweighted_total(losses, output)

    def task_gradients(self, losses: list[Tensor], shared: list[Tensor]) -> list[Tensor]:
        """Per shared tensor, the tasks' gradients on it stacked (tasks first); each head's
        parameters get their task's gradient in `.grad` on the way."""
        heads = self.head_parameters or []
        per_task = []
        for loss in losses:
            grads = torch.autograd.grad(
                loss, [*shared, *heads], retain_graph=True, materialize_grads=True
            )
            per_task.append(grads[: len(shared)])
            for parameter, grad in zip(heads, grads[len(shared) :], strict=True):
                parameter.grad = grad if parameter.grad is None else parameter.grad + grad
        return [torch.stack(grads) for grads in zip(*per_task, strict=True)]

    def drop(self, gradients: Tensor, activations: Tensor, shard: Shard) -> Tensor:
        """Algorithm 1 on one shared tensor: the masked sum of the tasks' `gradients` on it."""
        signed = (gradients * activations.detach().sign()).sum(dim=1)  # Σ over the batch
        shard.reduce_shared([signed])  # under DDP: the whole batch's sums
        total, magnitude = signed.sum(dim=0), signed.abs().sum(dim=0)
        ratio = torch.where(magnitude > 0, total / magnitude, 0.0)
        purity = 0.5 * (1 + ratio)
        uniform = torch.rand_like(purity)
        keep = (purity > uniform) & (signed > 0) | (purity < uniform) & (signed < 0)
        return (keep.unsqueeze(1) * gradients).sum(dim=0)

    def record_cosines(self, rows: list[int], on_shared: list[Tensor], combined: list[Tensor]):
        flat = torch.cat([g.flatten(start_dim=1) for g in on_shared], dim=1)
        cosines = F.cosine_similarity(flat, torch.cat([c.flatten() for c in combined])[None])
        index = self.index(rows, self.steps.device)
        self.cosine_sums.index_add_(0, index, cosines.float())
        self.steps.index_add_(0, index, torch.ones_like(cosines, dtype=torch.float))

    def logged(self) -> dict[str, float]:
        return epoch_means(self.task_names, self.steps, cosine=self.cosine_sums)
