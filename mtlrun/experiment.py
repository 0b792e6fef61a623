"""Assembly: the `Experiment` a run config builds (data, tasks, model, weighting, optimiser),
every config mistake surfacing before any training. The loop that trains it is `mtlrun.loop`."""

import os
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig

from mtlrun.affinity import TaskAffinity
from mtlrun.backbones import BACKBONES, Backbone
from mtlrun.config import check_choice, check_range, check_run_keys, parse
from mtlrun.data import DATASETS, Batch, Data, load_data
from mtlrun.distributed import SINGLE, Ranks
from mtlrun.errors import ConfigError
from mtlrun.optim import OPTIMIZERS, build_optimizer
from mtlrun.sharing import SHARING, ModelOutput, MultiTaskModel
from mtlrun.tasks import Task, build_tasks, task_configs
from mtlrun.weighting import WEIGHTINGS, Weighting, check_sharing


@dataclass
class TrainerConfig:
    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 1000
    eval_every: int = 1  # evaluate on the validation split every this many epochs
    precision: str = "fp32"  # "fp32" or "bf16" (autocast)
    grad_clip: float = 0.0  # max global gradient norm; 0 turns clipping off
    deterministic: bool = False  # bit-for-bit repeatable runs (slower on GPU)
    compile: bool = False  # torch.compile the model
    image_rows: int = 2  # rows of input/reconstruction pairs in each reconstruction grid
    progress: bool = True  # the progress bar (shown only on a terminal)
    # processes training one run data-parallel (one per GPU on CUDA); README: Scaling out
    devices: int = 1
    # measure inter-task affinity (TAG, Fifty et al. 2021) every task_affinity_every steps
    task_affinity: bool = False
    task_affinity_every: int = 1

    def check(self, key: str) -> None:
        check_choice(f"{key}.precision", self.precision, ("fp32", "bf16"))
        names = (
            *("epochs", "batch_size", "eval_batch_size", "eval_every", "image_rows", "devices"),
            "task_affinity_every",
        )
        for name in names:
            check_range(f"{key}.{name}", getattr(self, name), 1)
        check_range(f"{key}.grad_clip", self.grad_clip, 0)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"device={name!r} is not a device; use auto, cpu, cuda or cuda:N"
        ) from None
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0:
            raise ConfigError(f"device={name} but no CUDA GPU is visible; use device=cpu or auto")
        if device.index is not None and device.index >= count:
            raise ConfigError(
                f"device={name} but only {count} GPU(s) are visible; use cuda:0 to cuda:{count - 1}"
            )
    elif device.type != "cpu":
        raise ConfigError(f"device={name!r} is not supported; use auto, cpu, cuda or cuda:N")
    return device


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = not deterministic


@dataclass
class Experiment:
    """Everything a config builds: the data, the tasks, the model and its optimiser."""

    cfg: DictConfig
    trainer: TrainerConfig
    device: torch.device
    data: Data
    tasks: list[Task]
    model: MultiTaskModel
    weighting: Weighting
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler | None
    ranks: Ranks = field(default_factory=Ranks)  # this process's place in a DDP run
    affinity: TaskAffinity | None = None  # with trainer.task_affinity

    def __post_init__(self) -> None:
        self.forward = torch.compile(self.model) if self.trainer.compile else self.model

    @property
    def autocast(self) -> torch.autocast:
        bf16 = self.trainer.precision == "bf16"
        return torch.autocast(self.device.type, torch.bfloat16, enabled=bf16)

    @property
    def loss_tasks(self) -> list[Task]:
        return [task for task in self.tasks if task.has_loss]

    def model_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        for task in self.tasks:
            inputs = task.corrupt(inputs)
        return inputs

    def task_losses(self, output: ModelOutput, batch: Batch) -> list[torch.Tensor]:
        """One loss per task with a loss, each holding everything that belongs to the task:
        its head's loss (a VAE reconstruction's ELBO) and its own modules' (concat's
        autoencoders)."""
        losses = []
        for task in self.loss_tasks:
            name = task.name
            loss = task.loss(output.predictions[name], output.encodings[name], batch)
            if name in output.own_losses:
                loss = loss + output.own_losses[name].mean()
            losses.append(loss)
        return losses

    def losses_on(self, inputs: torch.Tensor, batch: Batch) -> list[torch.Tensor]:
        """The task losses of the model as it is now, on `inputs` (as the model sees them) and
        `batch`'s targets."""
        with self.autocast:
            return self.task_losses(self.forward(inputs), batch)

    @property
    def reconstruction(self) -> Task | None:
        """The (first) task that reconstructs the input, for image grids."""
        return next((task for task in self.tasks if task.reconstructs), None)


PARTS = {
    "dataset": DATASETS,
    "backbone": BACKBONES,
    "sharing": SHARING,
    "weighting": WEIGHTINGS,
    "optim": OPTIMIZERS,
}


def check_config(cfg: DictConfig) -> None:
    """Every value of a run config against its schema, before any data loads or any file is
    written: what is left for `build` are the checks that need the data (a task's label)."""
    check_run_keys(cfg)
    parse(TrainerConfig, cfg.trainer, "trainer")
    for key, registry in PARTS.items():
        registry.config(str(cfg[key].name), cfg[key], key)
    task_configs(cfg.tasks)


def build(cfg: DictConfig, ranks: Ranks = SINGLE) -> Experiment:
    """Build from the config; every config mistake surfaces here, before any training. Under
    DDP (`ranks`), each rank builds the same experiment on its own device."""
    check_config(cfg)
    trainer = parse(TrainerConfig, cfg.trainer, "trainer")
    device = ranks.device(resolve_device(str(cfg.device)))
    seed_everything(cfg.seed, trainer.deterministic)
    data = load_data(cfg.dataset, device, cfg.seed)

    def make_backbone() -> Backbone:
        return BACKBONES.build(cfg.backbone.name, cfg.backbone, "backbone", data.info)

    # The tasks check themselves against a backbone like the model's, which is then dropped:
    # the model makes its own (one, or one per task) from the same factory.
    tasks = build_tasks(cfg.tasks, data.info, make_backbone())
    torch.manual_seed(cfg.seed)  # the same initial weights, whatever the checks drew
    model = SHARING.build(cfg.sharing.name, cfg.sharing, "sharing", make_backbone, tasks)
    model = model.to(device)
    model.check_epochs(trainer.epochs)
    loss_tasks = [task for task in tasks if task.has_loss]
    check_sharing(cfg.weighting, cfg.sharing, model)
    weighting = WEIGHTINGS.build(cfg.weighting.name, cfg.weighting, "weighting", loss_tasks, model)
    weighting = weighting.to(device)
    ranks.same_weights([model, weighting])
    steps_per_epoch = data.train.num_batches(trainer.batch_size)
    parameters = [*model.parameters(), *weighting.extra_parameters()]
    optimizer, scheduler = build_optimizer(
        cfg.optim,
        parameters,
        steps_per_epoch,
        trainer.epochs,
        model.learning_rate_scales(str(cfg.optim.name)),
    )
    experiment = Experiment(
        cfg, trainer, device, data, tasks, model, weighting, optimizer, scheduler, ranks
    )
    if trainer.task_affinity:
        experiment.affinity = TaskAffinity(experiment, trainer.task_affinity_every)
    return experiment
