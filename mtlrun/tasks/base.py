"""The task interface: a head on the encoder's code, a loss, and metrics with directions."""

from typing import ClassVar, Literal

from torch import Tensor, nn

from mtlrun.backbones import Backbone, Encoding
from mtlrun.data import Batch, DatasetInfo
from mtlrun.schemas.task import TaskConfig as TaskConfig  # plug-ins subclass it from here

Direction = Literal["min", "max"]


class Task:
    """One task of a multi-task model.

    The loss carries everything that belongs to the task (a VAE reconstruction's β·KL is part of
    its ELBO), so weightings and aggregators see exactly one loss per task. `metric_sums`
    returns sums over the batch, so evaluation can add batches up on the device and divide
    once; every metric it returns is declared in `directions` (lower or higher is better), and
    `primary_metric` names the one metric Δm compares the task on.
    """

    directions: ClassVar[dict[str, Direction]] = {}
    has_loss: ClassVar[bool] = True
    # What the rest of mtlrun may ask of a task, instead of its type:
    reconstructs: ClassVar[bool] = False  # its head decodes the code back to the input
    # (the task a VAE's KL belongs to; reconstruction grids and interpolations use its head)
    grid_label: str | None = None  # the class target prediction grids label the images with
    prior_samples: int | None = None  # images in each grid of samples from the prior
    # Its head reads a per-pixel backbone's feature map and predicts one value per pixel (its
    # grids show target and prediction as images: `pictures`); else it reads a code per example.
    per_pixel: ClassVar[bool] = False
    # The keys of `split_state` that evaluation joins along their first dimension rather than
    # adds up over a split's batches.
    joined: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, name: str, weight: float) -> None:
        self.name = name
        self.weight = weight

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list["Task"]) -> None:
        """Raise a ConfigError if this task cannot run on this data and backbone."""

    def build_head(self, backbone: Backbone) -> nn.Module | None:
        """The task-specific module mapping an Encoding to this task's prediction."""
        return None

    def corrupt(self, inputs: Tensor) -> Tensor:
        """The model sees the inputs after every task's `corrupt` (identity unless a task, such
        as denoising, corrupts them); targets stay clean."""
        return inputs

    @property
    def primary_metric(self) -> str | None:
        """The metric (a key of `directions`) that Δm compares this task on; None for a task
        that is not compared (it has no loss)."""
        return None

    def per_example_loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        raise NotImplementedError

    def loss(self, prediction: Tensor, encoding: Encoding, batch: Batch) -> Tensor:
        return self.per_example_loss(prediction, encoding, batch).mean()

    def metric_sums(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        return {"loss": self.per_example_loss(prediction, encoding, batch).sum()}

    def example_count(self, batch: Batch) -> Tensor | int:
        """How many examples `metric_sums` summed over: the denominator of the means, fewer
        than the batch's size when some of this task's targets are missing. A tensor wherever
        they may be missing (`Batch.may_miss`), an int otherwise: the ranks of a DDP run
        reduce the counts together when any is a tensor, so all must take the same form."""
        return len(batch)

    def split_state(
        self, prediction: Tensor, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        """What evaluation keeps of a batch, besides `metric_sums`, for metrics that are not
        means over examples: tensors added up over the split's batches (a confusion matrix),
        or, for the keys in `joined`, joined (every pixel's error, for a median). Computed on
        the device without reading anything back; `split_metrics` turns the whole split's
        state into metrics."""
        return {}

    def split_metrics(self, state: dict[str, Tensor]) -> dict[str, Tensor]:
        """Metrics of a whole split (0-dim tensors) from its accumulated `split_state`."""
        return {}

    def pictures(self, prediction: Tensor, batch: Batch) -> tuple[Tensor, Tensor]:
        """A per-pixel task's target and prediction as RGB images in [0, 1] (N×3×H×W each),
        for the run's image grids."""
        raise NotImplementedError

    def final_metric_sums(
        self, head: nn.Module, encoding: Encoding, batch: Batch
    ) -> dict[str, Tensor]:
        """Costlier metrics computed once, on the test split at the end of training."""
        return {}


# A config per task type (`task/classification`); a config names its instances in `tasks`, the
# Hydra way: `- /task@tasks.digit: classification` in an experiment, `+task@tasks.digit=...`.
