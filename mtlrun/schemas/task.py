"""The task types' schemas (`+task@tasks.NAME=TYPE`, `tasks.NAME.KEY=...`): defaults and checks.
Imports no torch: composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass, field

from mtlrun.config import check_choice, check_each, check_range


@dataclass
class TaskConfig:
    """What every task's config has; a task type's schema subclasses it."""

    type: str  # the registered task type
    weight: float = 1.0  # its loss weight under weighting=fixed (and in `<split>/loss`)

    def check(self, key: str) -> None:
        check_range(f"{key}.weight", self.weight, 0)


@dataclass
class MLPHeadConfig(TaskConfig):
    """A task whose head is an `MLPHead` predicting one of the dataset's targets."""

    target: str | None = None  # the dataset's target to predict; by default the task's name
    hidden_dims: list[int] = field(default_factory=list)  # the head's hidden layers
    activation: str = "relu"
    dropout: float = 0.0  # after each of the head's hidden layers

    def check(self, key: str) -> None:
        super().check(key)
        check_each(f"{key}.hidden_dims", self.hidden_dims, 1)
        check_range(f"{key}.dropout", self.dropout, 0, 1)


@dataclass
class ClassificationConfig(MLPHeadConfig):
    # target: a class label of the dataset
    hidden_dims: list[int] = field(default_factory=lambda: [128])


@dataclass
class RegressionConfig(MLPHeadConfig):
    pass  # target: a real-valued target of the dataset


LIKELIHOODS = ("bernoulli", "gaussian", "mse")


@dataclass
class ReconstructionConfig(TaskConfig):
    likelihood: str = "bernoulli"  # bernoulli (images) | gaussian | mse
    sigma: float = 0.1  # the Gaussian's standard deviation (the starting value with learn_sigma)
    learn_sigma: bool = False  # gaussian: learn one σ per input dimension
    iw_samples: int = 64  # k for the importance-weighted bound nll_iw at the end; 0 skips it

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.iw_samples", self.iw_samples, 0)


@dataclass
class DenoisingConfig(ReconstructionConfig):
    noise_std: float = 0.3  # additive Gaussian noise, then clipped to [0, 1]; 0 turns it off
    mask_prob: float = 0.0  # each pixel set to 0 with this probability (masking noise)


@dataclass
class GenerationConfig(TaskConfig):
    weight: float = 0.0  # it has no loss
    num_samples: int = 64  # images in each prior-sample grid

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.num_samples", self.num_samples, 1)


DENSE_HEADS = ("conv", "aspp")


@dataclass
class DenseTaskConfig(TaskConfig):
    """A task that predicts one value per pixel (segmentation, depth, normal) from a backbone
    whose code is a feature map (`backbone=segnet`); its head's output is resized to the input's
    height and width when the feature map is smaller."""

    target: str | None = None  # the dataset's per-pixel target; by default the task's name
    # conv: 3×3 conv then 1×1 conv (the heads of MTAN's SegNet and LibMTL's NYUv2 example);
    # aspp: DeepLab's atrous spatial pyramid pooling (LibMTL's head on the dilated ResNet-50)
    head: str = "conv"

    def check(self, key: str) -> None:
        super().check(key)
        check_choice(f"{key}.head", self.head, DENSE_HEADS)


@dataclass
class SegmentationConfig(DenseTaskConfig):
    pass  # target: a per-pixel class map, IGNORE_LABEL (-1) where unlabelled


@dataclass
class DepthConfig(DenseTaskConfig):
    pass  # target: a per-pixel depth map (N×1×H×W), 0 where invalid


@dataclass
class NormalConfig(DenseTaskConfig):
    pass  # target: per-pixel unit surface normals (N×3×H×W), the zero vector where invalid
