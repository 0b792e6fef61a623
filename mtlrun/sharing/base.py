"""The sharing interface: one nn.Module mapping a batch to one prediction per task."""

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding

OWN_LOSS = "autoencoder_loss"  # the metric a task's `own_losses` are reported as


@dataclass
class ModelOutput:
    predictions: dict[str, Tensor]  # one per task with a head
    encodings: dict[str, Encoding]  # the encoding each task's head read
    # Penalties that belong to no task (soft sharing's parameter distance, the task-relation
    # penalty, concat's Ω), already weighted; a task's own terms (a VAE's KL) are in its loss.
    auxiliary_loss: Tensor | None
    # The last representation every task reads, as a cut through the graph (for a VAE [μ, log σ²],
    # which the sample z is computed from); gradient aggregators differentiate the task losses
    # with respect to it. Empty when the tasks share no parameters.
    shared: list[Tensor] = field(default_factory=list)
    # Per-example losses of modules that belong to one task besides its head (concat: the task's
    # own autoencoder), added to that task's loss; reported as `<task>/autoencoder_loss`.
    own_losses: dict[str, Tensor] = field(default_factory=dict)


class MultiTaskModel(nn.Module):
    """What every sharing strategy builds."""

    def forward(self, x: Tensor) -> ModelOutput:
        raise NotImplementedError

    def encode(self, task: str, x: Tensor) -> Encoding:
        """The encoding `task`'s head reads for input `x`."""
        raise NotImplementedError

    def head(self, task: str) -> nn.Module:
        """`task`'s head (for reconstruction: the decoder, used for image grids)."""
        raise NotImplementedError

    def begin_epoch(self, epoch: int) -> None:
        """Called before each training epoch (two-stage training switches stage here)."""

    def trains(self, task: str) -> bool:
        """Whether `task`'s loss is trained on in the current epoch."""
        return True

    def check_epochs(self, epochs: int) -> None:
        """Raise a ConfigError if the model cannot be trained in `epochs` epochs (two-stage
        training needs epochs left for its second stage); for the loop to call at build."""

    def learning_rate_scales(self, optimizer: str) -> list[tuple[list[nn.Parameter], float]]:
        """Parameters that train at a multiple of `optim.lr` under `optimizer` (`optim.name`),
        with the multiple: each pair becomes its own optimiser parameter group (schedules scale
        every group alike). The multiple may depend on the optimiser: a factor tuned for SGD's
        steps, which grow with the gradient, is not one for Adam's."""
        return []

    def last_shared_parameters(self) -> list[nn.Parameter]:
        """The parameters of the last layer every task's loss depends on (the W on which GradNorm
        measures the task gradients); empty when the tasks share no parameters."""
        return []

    @property
    def has_prior(self) -> bool:
        """Whether the model can sample from a prior (its backbones are VAEs)."""
        return any(isinstance(m, Backbone) and m.has_prior for m in self.modules())

    @property
    def shares_representation(self) -> bool:
        """Whether the tasks read a representation computed by parameters they share, the cut
        `ModelOutput.shared` gives (what gradient aggregators and GradNorm work on)."""
        return False

    @property
    def stage(self) -> int | None:
        """The training stage, for strategies that train in stages (logged with the metrics)."""
        return None


BackboneFactory = Callable[[], Backbone]

"""Sharing strategies, built as `builder(config, make_backbone, tasks)`."""
