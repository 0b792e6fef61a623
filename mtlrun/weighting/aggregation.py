"""Gradient aggregation: Jacobian descent on the shared parameters, through torchjd.

Instead of one gradient of a weighted sum, every task's gradient on the shared parameters is
kept (the rows of a Jacobian) and an aggregator from `torchjd.aggregation` turns them into one
update direction (PCGrad, MGDA, CAGrad, UPGrad, Nash-MTL). Each method's file only builds its
aggregator; this file is the part they share.
"""

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlrun.distributed import WHOLE, Shard
from mtlrun.errors import ConfigError
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task
from mtlrun.weighting.base import (
    TaskIndex,
    Weighting,
    epoch_means,
    shared_representation,
    trained_tasks,
    unweighted_total,
)

if TYPE_CHECKING:
    from torchjd.aggregation import Aggregator


COSINE_EPS = 1e-8  # the least norm a cosine divides by (`F.cosine_similarity`'s default)


class GradientAggregation(Weighting):
    """Per-task gradients on the shared parameters, combined by a torchjd aggregator.

    One step: `mtl_backward` puts each task's gradient on its own head's parameters into
    `.grad` and the Jacobian of the task losses on the shared parameters (those that
    `output.shared` depends on, which torchjd finds in the graph) into their `.jac`;
    `jac_to_grad` aggregates each Jacobian into `.grad`.

    The auxiliary loss (penalties that belong to no task) is a regulariser, not a task: it is
    backpropagated on its own, unweighted, before the task losses (`retain_graph`, since they
    share the encoder's graph), and `jac_to_grad` adds the aggregate to the `.grad` it left. So it
    is trained on exactly once, as with the loss weightings, and takes no part in resolving the
    conflicts between tasks (added to every task's loss it would be counted once per row, and
    would pull the rows together).

    With fewer than two tasks trained on (two-stage training), there is nothing to aggregate
    and the step is a plain backward. The total returned for the logs is the unweighted sum of
    the task losses plus the auxiliary loss. Logged each epoch, per task: the cosine between its
    gradient on the shared parameters and the aggregated one, and its aggregation weight, both
    averaged over the steps the task was trained on.

    Under DDP each rank's Jacobian is of its shard; they are reduced (each row weighted by the
    rank's part of that task's loss: its share of the rows, or of the task's labelled rows where
    targets are missing) before aggregating, so every rank aggregates the whole batch's
    Jacobian, as one process would, and applies the same update.

    A `torch.compile`d model (`trainer.compile=true`) is refused: its outputs hide the cut
    that `mtl_backward` differentiates through.
    """

    needs_shared_representation = True

    def __init__(
        self,
        method: str,
        tasks: list[Task],
        model: MultiTaskModel,
        make_aggregator: Callable[[], "Aggregator"],
    ) -> None:
        super().__init__(tasks, model)
        self.method = method
        try:
            self.aggregator = make_aggregator()
        except ImportError as error:  # CAGrad, Nash-MTL and UPGrad need torchjd's extras
            raise ConfigError(f"weighting={method}: {error}") from None
        # The cosines come from the Gramian G = J Jᵀ where the aggregator forms one (T×T
        # work); a second pass over the whole Jacobian each step costs as much as a bare step
        # on a wide trunk. GradDrop, ConFIG, Nash-MTL, ExcessMTL and random weights form none:
        # theirs come from J and the aggregate, one pass over J beside their own.
        gramian_weighting = getattr(self.aggregator, "gramian_weighting", None)
        if gramian_weighting is not None:
            gramian_weighting.register_forward_hook(self._cosines_from_gramian)
        else:
            self.aggregator.register_forward_hook(self._cosines_from_jacobian)
        # A plain list, not a submodule: the model's parameters are saved with the model.
        self.model_parameters = list(model.parameters())
        self.index = TaskIndex()
        self.rows: Tensor | None = None  # the tasks of the Jacobian's rows in this step
        self.gives_weights = True
        # Summed over the epoch on the device and read once in `logged` (no host sync per
        # step); saved in checkpoints, so an epoch resumed midway logs the same averages.
        n = len(tasks)
        self.register_buffer("cosine_sums", torch.zeros(n))
        self.register_buffer("weight_sums", torch.zeros(n))
        self.register_buffer("steps", torch.zeros(n))

    def backward(self, losses: list[Tensor], output: ModelOutput, shard: Shard = WHOLE) -> Tensor:
        shared = [f for f in shared_representation(output, self.method) if f.requires_grad]
        rows = self.row_order(trained_tasks(losses))
        auxiliary = output.auxiliary_loss
        if auxiliary is not None and auxiliary.requires_grad:
            auxiliary.backward(retain_graph=bool(rows))
        if len(rows) > 1 and shared:
            from torchjd.autojac import mtl_backward  # imported when used: it loads cvxpy

            # The graph is kept until the step ends: tasks may read one tensor computed from the
            # cut (concat's VAE sample), which the first task's backward would otherwise free.
            mtl_backward([losses[t] for t in rows], features=shared, retain_graph=True)
            self.rows = self.index(rows, self.steps.device)
            with_jacobian = [p for p in self.model_parameters if hasattr(p, "jac")]
            # Under DDP: the Jacobian of the whole batch's losses, the same on every rank.
            shard.reduce_shared([p.jac for p in with_jacobian])
            weights = self.aggregate(with_jacobian)
            # GradDrop and ConFIG combine the rows without weights: only cosines are logged.
            self.gives_weights = weights is not None
            if weights is not None:
                self.weight_sums.index_add_(0, self.rows, weights.detach().float())
            self.steps.index_add_(0, self.rows, torch.ones(len(rows), device=self.steps.device))
        elif rows:
            sum(losses[t] for t in rows).backward()
        return unweighted_total(losses, output)

    def row_order(self, rows: list[int]) -> list[int]:
        """The order of the tasks trained on in the Jacobian's rows: the tasks' own, for the
        aggregators that treat them alike (PCD puts its primary task first)."""
        return rows

    def aggregate(self, shared_parameters: list[nn.Parameter]) -> Tensor | None:
        """Aggregate the `.jac` of the shared parameters into their `.grad`; the weights (None
        for an aggregator that combines the rows otherwise: GradDrop, ConFIG)."""
        from torchjd.autojac import jac_to_grad

        return jac_to_grad(shared_parameters, self.aggregator)

    def _cosines_from_gramian(
        self, module: nn.Module, inputs: tuple[Tensor], weights: Tensor
    ) -> None:
        """Forward hook on the aggregator's weighting of the Gramian G = J Jᵀ, whose aggregate
        is d = Jᵀw: the cosine of task i's gradient J_i with d is J_i·d / (‖J_i‖ ‖d‖) =
        (Gw)_i / √(G_ii · wᵀGw). Each norm is held at or above 1e-8, as
        `F.cosine_similarity` holds it."""
        gramian, weights = inputs[0], weights.to(inputs[0].dtype)
        products = gramian @ weights
        squared_norms = gramian.diagonal().clamp(min=COSINE_EPS**2)
        squared_update = (weights @ products).clamp(min=COSINE_EPS**2)
        cosines = products * torch.rsqrt(squared_norms * squared_update)
        self.cosine_sums.index_add_(0, self.rows, cosines.float())

    def _cosines_from_jacobian(
        self, module: nn.Module, inputs: tuple[Tensor], update: Tensor
    ) -> None:
        """Forward hook on an aggregator that forms no Gramian: it sees J and the aggregate."""
        cosines = F.cosine_similarity(inputs[0], update.unsqueeze(0), dim=1, eps=COSINE_EPS)
        self.cosine_sums.index_add_(0, self.rows, cosines.float())

    def logged(self) -> dict[str, float]:
        # GradDrop and ConFIG combine the rows without weights: their weight sums stay 0.
        weights = {"weight": self.weight_sums} if self.gives_weights else {}
        return epoch_means(self.task_names, self.steps, cosine=self.cosine_sums, **weights)
