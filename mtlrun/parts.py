"""Every swappable part's registry, and mtlrun's own parts declared in them by name, schema and
module. Importing this module fills Hydra's ConfigStore with the schemas (the options of the
groups dataset, backbone, sharing, task, weighting, optim and logger) and imports no torch: a
part's module is imported when a run first builds it. Plug-ins add their own parts with
`mtlrun.register`."""

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from mtlrun.config import GROUPS_HELP, check_choice
from mtlrun.errors import ConfigError, listed
from mtlrun.registry import Registry
from mtlrun.schemas import backbone, dataset, logger, optim, sharing, task, weighting
from mtlrun.schemas.task import TaskConfig
from mtlrun.schemas.trainer import TrainerConfig

DATASETS: Registry = Registry(
    "dataset", group="dataset", builds="mtlrun.data.registry.RawData", arguments="config"
)
BACKBONES: Registry = Registry(
    "backbone", group="backbone", builds="mtlrun.backbones.Backbone", arguments="config, info"
)
SHARING: Registry = Registry(
    "sharing",
    group="sharing",
    builds="mtlrun.sharing.MultiTaskModel",
    arguments="config, make_backbone, tasks",
)
TASKS: Registry = Registry(
    "tasks.<name>.type",
    group="task",
    name_key="type",
    builds="mtlrun.tasks.Task",
    arguments="config, name",
)
"""Task types: `Task` subclasses."""
WEIGHTINGS: Registry = Registry(
    "weighting",
    group="weighting",
    builds="mtlrun.weighting.Weighting",
    arguments="config, tasks, model",
)
"""Weightings: `Weighting` subclasses."""
OPTIMIZERS: Registry = Registry(
    "optim", group="optim", builds="torch.optim.Optimizer", arguments="config, parameter_groups"
)
"""Optimisers; the parameter groups carry their own lr."""
LOGGERS: Registry = Registry(
    "logger",
    group="logger",
    keyed=True,
    builds="mtlrun.loggers.Logger",
    arguments="config, run_dir",
)
"""Loggers: `Logger` subclasses."""

# The parts a run config chooses one of by `<key>.name`, in the order they are checked.
CHOSEN = {
    "dataset": DATASETS,
    "backbone": BACKBONES,
    "sharing": SHARING,
    "weighting": WEIGHTINGS,
    "optim": OPTIMIZERS,
}

# The trainer is no swappable part: its one option, `trainer: default`, is its schema.
ConfigStore.instance().store(group="trainer", name="default", node=TrainerConfig)

for name in ("mnist", "fashion_mnist", "cifar10"):
    DATASETS.declare(name, dataset.TorchvisionDatasetConfig, "mtlrun.data.torchvision_sets")
for name in ("multimnist", "multifashion"):
    DATASETS.declare(name, dataset.MultiMNISTConfig, "mtlrun.data.multimnist")
DATASETS.declare("synthetic", dataset.SyntheticImagesConfig, "mtlrun.data.synthetic")
DATASETS.declare(
    "synthetic_regression",
    dataset.SyntheticRegressionConfig,
    "mtlrun.data.synthetic_regression",
)
DATASETS.declare("image_folder", dataset.ImageFolderConfig, "mtlrun.data.files")
DATASETS.declare("arrays", dataset.ArraysConfig, "mtlrun.data.files")
for name in ("nyuv2", "cityscapes"):
    DATASETS.declare(name, dataset.DenseScenesConfig, "mtlrun.data.dense_scenes")
DATASETS.declare("celeba", dataset.CelebAConfig, "mtlrun.data.celeba")
DATASETS.declare("dense_mnist", dataset.DenseMNISTConfig, "mtlrun.data.dense_mnist")

BACKBONES.declare("dense_ae", backbone.DenseAEConfig, "mtlrun.backbones.dense")
BACKBONES.declare("vae", backbone.VAEConfig, "mtlrun.backbones.dense")
BACKBONES.declare("mlp", backbone.MLPConfig, "mtlrun.backbones.dense")
BACKBONES.declare("cnn", backbone.CNNConfig, "mtlrun.backbones.conv")
BACKBONES.declare("conv_vae", backbone.ConvVAEConfig, "mtlrun.backbones.conv")
BACKBONES.declare("resnet50_dilated", backbone.ResNetDilatedConfig, "mtlrun.backbones.resnet")
BACKBONES.declare("cifar_resnet18", backbone.CIFARResNet18Config, "mtlrun.backbones.resnet")
BACKBONES.declare("segnet", backbone.SegNetConfig, "mtlrun.backbones.segnet")

for name, schema in {
    "hard": sharing.SharedLayersConfig,
    "soft": sharing.SoftSharingConfig,
    "cross_stitch": sharing.CrossStitchConfig,
    "mtan": sharing.MTANConfig,
    "mmoe": sharing.MMoEConfig,
    "concat": sharing.ConcatConfig,
    "two_stage": sharing.TwoStageConfig,
    "single_task": sharing.SharingConfig,
    "grouped": sharing.GroupedConfig,
}.items():
    SHARING.declare(name, schema, f"mtlrun.sharing.{name}")

for name, schema in {
    "classification": task.ClassificationConfig,
    "regression": task.RegressionConfig,
    "reconstruction": task.ReconstructionConfig,
    "denoising": task.DenoisingConfig,
    "generation": task.GenerationConfig,
    "segmentation": task.SegmentationConfig,
    "depth": task.DepthConfig,
    "normal": task.NormalConfig,
}.items():
    TASKS.declare(name, schema, f"mtlrun.tasks.{name}")

# Weighting name: (its schema, its module under mtlrun.weighting).
for name, (schema, module) in {
    "equal": (weighting.WeightingConfig, "fixed"),
    "fixed": (weighting.WeightingConfig, "fixed"),
    "uncertainty": (weighting.WeightingConfig, "uncertainty"),
    "dwa": (weighting.DWAConfig, "dwa"),
    "gradnorm": (weighting.GradNormConfig, "gradnorm"),
    "famo": (weighting.FAMOConfig, "famo"),
    "scale_invariant": (weighting.WeightingConfig, "scale_invariant"),
    "mgda_ub": (weighting.MGDAUBConfig, "mgda_ub"),
    "pcgrad": (weighting.WeightingConfig, "pcgrad"),
    "mgda": (weighting.MGDAConfig, "mgda"),
    "cagrad": (weighting.CAGradConfig, "cagrad"),
    "upgrad": (weighting.WeightingConfig, "upgrad"),
    "nashmtl": (weighting.NashMTLConfig, "nashmtl"),
    "aligned_mtl": (weighting.AlignedMTLConfig, "aligned_mtl"),
    "dualproj": (weighting.WeightingConfig, "dualproj"),
    "imtl_g": (weighting.WeightingConfig, "imtl_g"),
    "config": (weighting.WeightingConfig, "conflict_free"),
    "fairgrad": (weighting.FairGradConfig, "fairgrad"),
    "graddrop": (weighting.WeightingConfig, "graddrop"),
    "gradvac": (weighting.GradVacConfig, "gradvac"),
    "random": (weighting.WeightingConfig, "random_weights"),
    "excess_mtl": (weighting.ExcessMTLConfig, "excess_mtl"),
    "pcd": (weighting.PCDConfig, "pcd"),
    "scalarization": (weighting.ScalarizationConfig, "scalarization"),
}.items():
    WEIGHTINGS.declare(name, schema, f"mtlrun.weighting.{module}")

OPTIMIZERS.declare("adam", optim.AdamConfig, "mtlrun.optim")
OPTIMIZERS.declare("adamw", optim.AdamWConfig, "mtlrun.optim")
OPTIMIZERS.declare("sgd", optim.SGDConfig, "mtlrun.optim")

for name in ("jsonl", "csv", "tensorboard"):
    LOGGERS.declare(name, logger.LoggerConfig, f"mtlrun.loggers.{name}")
LOGGERS.declare("mlflow", logger.MLflowConfig, "mtlrun.loggers.mlflow")
LOGGERS.declare("wandb", logger.WandbConfig, "mtlrun.loggers.wandb")


def task_configs(node: DictConfig) -> dict[str, TaskConfig]:
    """Each task instance's config in `tasks`, by name, checked against its type's schema."""
    if not node:
        raise ConfigError("tasks is empty; add one, e.g. +task@tasks.reconstruction=reconstruction")
    configs: dict[str, TaskConfig] = {}
    for name, task_node in node.items():
        if not isinstance(task_node, DictConfig) or "type" not in task_node:
            settings = ", ".join(task_node) if isinstance(task_node, DictConfig) else ""
            raise ConfigError(
                f"tasks.{name} has {f'settings ({settings}) but ' if settings else ''}no type; "
                f"add it as +task@tasks.{name}=TYPE, one of: {listed(TASKS.names, GROUPS_HELP)}"
            )
        check_choice(f"tasks.{name}.type", task_node.type, TASKS.names)
        configs[str(name)] = TASKS.config(task_node.type, task_node, f"tasks.{name}")
    return configs
