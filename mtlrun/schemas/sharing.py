"""The sharing strategies' schemas (`sharing=NAME`, `sharing.KEY=...`): defaults and checks.
Imports no torch: composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass, field

from mtlrun.config import check_range
from mtlrun.errors import ConfigError


def check_nonnegative(key: str, value: float) -> None:
    """A penalty's weight: 0 turns it off."""
    if value < 0:
        raise ConfigError(f"{key}={value} must be at least 0 (0 turns it off)")


@dataclass
class SharingConfig:
    """What every strategy has; `sharing=single_task` has nothing else."""

    name: str
    # λ of the task-relation penalty on the heads (Zhang & Yeung 2010); 0 turns it off
    task_relation: float = 0.0

    def check(self, key: str) -> None:
        check_nonnegative(f"{key}.task_relation", self.task_relation)


@dataclass
class SharedLayersConfig(SharingConfig):
    """`sharing=hard`, and the base of `soft`: how much of the trunk the tasks share."""

    # trunk blocks shared by all tasks (0 to the number of blocks), the rest and the latent
    # layer copied per task; null: all of it, latent layer included
    shared_layers: int | None = None


@dataclass
class SoftSharingConfig(SharedLayersConfig):
    """`sharing=soft`: one network per task, tied by penalty · Σ_{i<j} ||θ_i − θ_j||² over the
    layers hard sharing would share (Duong et al. 2015). `shared_layers` is the tied trunk
    blocks (0 to the number of blocks); null: all, latent layer included."""

    penalty: float = 0.01  # λ of the squared parameter distance between the task networks

    def check(self, key: str) -> None:
        super().check(key)
        check_nonnegative(f"{key}.penalty", self.penalty)


@dataclass
class CrossStitchConfig(SharingConfig):
    """`sharing=cross_stitch`: one network per task; learned α mixes their activations after
    chosen blocks (Misra et al. 2016)."""

    # block indices to mix after, e.g. [0, 1]; null: after every block
    stitch_after: list[int] | None = None
    # α's initial diagonal: how much of its own activations a task keeps; the other 1 - init_self
    # of each row is spread over the other tasks
    init_self: float = 0.9
    # α's learning rate over optim.lr; null: 10² with adam/adamw (the low end of the paper's best
    # range, §5.2), 1 with sgd (whose step grows with α's gradient: from 10 up it diverged on the
    # tests' autoencoder); 1000 is the paper's setting
    alpha_lr_scale: float | None = None

    def check(self, key: str) -> None:
        super().check(key)
        if self.alpha_lr_scale is not None and self.alpha_lr_scale <= 0:
            raise ConfigError(
                f"{key}.alpha_lr_scale={self.alpha_lr_scale} must be positive: it multiplies "
                "optim.lr for the cross-stitch units' α"
            )
        if not 0.0 <= self.init_self <= 1.0:
            raise ConfigError(
                f"{key}.init_self={self.init_self} must be in [0, 1]: it is the share of its "
                "own activations each task keeps at the start"
            )


@dataclass
class MTANConfig(SharingConfig):
    """`sharing=mtan`, Liu et al. 2019: the conv trunk shared by all tasks, and per task a soft
    attention mask over its features at every conv block or stage (`backbone=cnn`, `segnet`,
    `resnet50_dilated`, `cifar_resnet18`)."""


@dataclass
class MMoEConfig(SharingConfig):
    """`sharing=mmoe`, Ma et al. 2018: `num_experts` encoders (the backbone's, each from its own
    random weights) shared by all tasks, and one softmax gate per task that mixes their codes;
    for backbones without a prior (dense_ae, mlp, cnn)."""

    num_experts: int = 4

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.num_experts", self.num_experts, 1)


@dataclass
class ConcatConfig(SharingConfig):
    """`sharing=concat`: one autoencoder per task; every head reads their concatenated codes.
    The loss adds each autoencoder's reconstruction loss (and KL for VAEs) and penalty · Ω.
    Needs image data."""

    # λ of Ω, the relatedness of the codes: the mean squared distance ||f_i − f_j||² between
    # task codes, over pairs of tasks and the batch
    penalty: float = 0.01

    def check(self, key: str) -> None:
        super().check(key)
        check_nonnegative(f"{key}.penalty", self.penalty)


@dataclass
class TwoStageConfig(SharingConfig):
    """`sharing=two_stage`: stage 1 trains the autoencoder on reconstruction only; stage 2
    freezes the encoder and fits the other tasks' heads on its codes. Needs a reconstruction
    task."""

    stage1_epochs: int = 5  # epochs of stage 1 (reconstruction); must be less than trainer.epochs

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.stage1_epochs", self.stage1_epochs, 1)


@dataclass
class GroupedConfig(SharingConfig):
    """`sharing=grouped`: each group of tasks gets its own hard-shared network; every task
    with a loss in exactly one group, e.g. `sharing.groups=[[digit,parity],[magnitude]]`."""

    groups: list[list[str]] = field(default_factory=list)
