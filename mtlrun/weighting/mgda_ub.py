"""MGDA-UB (Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization", NeurIPS 2018,
§3.3): MGDA on the gradients with respect to the shared representation, the method of their
experiments. `weighting=mgda` is full MGDA, on the shared parameters."""

import torch
from torch import Tensor

from mtlrun.distributed import Shard
from mtlrun.schemas.weighting import MGDAUBConfig
from mtlrun.sharing import MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import WEIGHTINGS, MeasuredWeighting, flat_gradients


@WEIGHTINGS.register("mgda_ub", schema=MGDAUBConfig)
class MGDAUB(MeasuredWeighting):
    """L = Σ_t α_t L_t + the auxiliary loss, with α the minimum-norm convex combination of the
    task gradients on the shared representation Z, solved anew every step.

    Full MGDA minimises ‖Σ_t α_t ∇_θ L_t‖ over the shared parameters θ, a backward pass per task.
    With Z = g(x; θ) the representation every task reads, ‖Σ_t α_t ∇_θ L_t‖² ≤ ‖∂Z/∂θ‖² ·
    ‖Σ_t α_t ∇_Z L_t‖² (their eq. 6); MGDA-UB minimises the second factor instead, which needs
    the gradients on Z only, and (their Theorem 1) still gives a direction that decreases every
    task, or a Pareto-stationary point, when ∂Z/∂θ has full rank.

    Each step, for the tasks trained on: g_t = ∇_Z L_t over the whole batch (`output.shared`,
    [μ, log σ²] for a VAE, flattened and concatenated; zero on a part a task does not read),
    divided by the normaliser `weighting.normalization` names, as in the authors'
    `gradient_normalizers`: none 1, l2 ‖g_t‖, loss L_t, loss+ L_t·‖g_t‖ (their code calls it
    optional and not part of the paper; the loss-based ones assume positive losses; a zero
    normaliser, as when a batch has no target for a task, is left at 1). The default, none, is
    what the authors trained MultiMNIST with (Sener, isl-org/MultiObjectiveOptimization issue
    #14: "optimizer=SGD|batch_size=256|lr=0.05|normalization_type=none"); their sample config
    (CelebA) uses loss+. The weights α come from torchjd's `MGDAWeighting` (Frank-Wolfe, their
    Algorithm 2) on the Gramian of the normalised gradients, and Σ_t α_t L_t of the raw losses
    (as the authors' training script scales them) plus the auxiliary loss is backpropagated once
    through the whole network.

    Where this differs from the authors' code: their script solves with projected gradient
    descent from the best pair of tasks and, for a pair, clamps α to [0.001, 0.999]; Frank-Wolfe
    reaches the same minimiser, 0 or 1 on the boundary. They run the forward pass twice (once for
    Z, once for the weighted loss); here one serves both, so dropout draws one mask.

    With fewer than two tasks trained on (two-stage training), the step is a plain backward of
    their sum. The total returned for the logs is the loss backpropagated. Logged each epoch, per
    task: its weight α_t, averaged over the steps it was weighted in (summed on the device, read
    once per epoch; torchjd's Frank-Wolfe loop itself reads the Gramian back to branch). A
    `torch.compile`d model is refused: its outputs hide the cut Z.
    """

    method = "mgda_ub"

    def __init__(self, config: MGDAUBConfig, tasks: list[Task], model: MultiTaskModel) -> None:
        super().__init__(tasks, model)
        from torchjd.aggregation import MGDAWeighting  # imported when chosen: torchjd loads cvxpy

        self.normalization = config.normalization
        self.solver = MGDAWeighting(epsilon=config.epsilon, max_iters=config.max_iters)

    def measure(self, losses: list[Tensor], shared: list[Tensor], shard: Shard) -> Tensor:
        """The min-norm convex weights of the normalised gradients of `losses` on `shared`."""
        gradients = flat_gradients(losses, shared).float()
        gramian = gradients @ gradients.T
        values = torch.stack([loss.detach().float() for loss in losses])
        # Under DDP each rank holds its shard's rows of Z, and the whole batch's gradient on
        # them is its own scaled by the shard's share: the ranks' Gramians, each scaled by
        # share², add up to the whole batch's.
        gramian.mul_(shard.share)
        shard.reduce_shared([gramian, values])
        norms = gramian.diagonal().sqrt()
        normalizer = {
            "none": torch.ones_like(norms),
            "l2": norms,
            "loss": values,
            "loss+": values * norms,
        }[self.normalization]
        normalizer = torch.where(normalizer == 0, torch.ones_like(normalizer), normalizer)
        return self.solver(gramian / (normalizer[:, None] * normalizer[None, :]))
