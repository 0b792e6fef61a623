"""Assembly: the `Experiment` a validated run config builds (data, tasks, model, weighting,
optimiser), every data-dependent mistake surfacing before any training. The loop that trains
it is `mtlrun.loop`."""

import os
from dataclasses import dataclass, field
from functools import cached_property

import torch
from omegaconf import DictConfig

from mtlrun.affinity import TaskAffinity, check_measurable
from mtlrun.backbones import Backbone
from mtlrun.config import parse
from mtlrun.data import Batch, Data, load_data
from mtlrun.devices import resolve_device
from mtlrun.distributed import SINGLE, Ranks
from mtlrun.memory import allocating, check_model_fits, data_settings, largest_setting
from mtlrun.optim import build_optimizer
from mtlrun.parts import BACKBONES, SHARING, WEIGHTINGS
from mtlrun.plugin_faults import plugin_fault
from mtlrun.schemas.trainer import TrainerConfig
from mtlrun.sharing import ModelOutput, MultiTaskModel
from mtlrun.tasks import Task, build_tasks
from mtlrun.weighting import Weighting, check_sharing
from mtlrun.weighting.base import check_backward, check_logged, check_signatures


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

    @cached_property
    def loss_tasks(self) -> list[Task]:
        """The tasks with a loss, in the order of the step's losses (made once: every step
        reads it)."""
        return [task for task in self.tasks if task.has_loss]

    def model_inputs(self, inputs: torch.Tensor) -> torch.Tensor:
        for task in self.tasks:
            inputs = task.corrupt(inputs)
        return inputs

    def task_losses(
        self, output: ModelOutput, batch: Batch, scales: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """One loss per task with a loss, each holding everything that belongs to the task:
        its head's loss (a VAE reconstruction's ELBO) and its own modules' (concat's
        autoencoders). `scales` (a DDP rank's `Shard.loss_scales`) multiply the heads'
        losses, which are means over the rows with a target, not the own modules'."""
        losses = []
        factors = [None] * len(self.loss_tasks) if scales is None else scales.unbind()
        for task, factor in zip(self.loss_tasks, factors, strict=True):
            name = task.name
            loss = task.loss(output.predictions[name], output.encodings[name], batch)
            if factor is not None:
                loss = loss * factor
            if name in output.own_losses:
                loss = loss + output.own_losses[name].mean()
            losses.append(loss)
        return losses

    def losses_on(
        self, inputs: torch.Tensor, batch: Batch, scales: torch.Tensor | None = None
    ) -> list[torch.Tensor]:
        """The task losses of the model as it is now, on `inputs` (as the model sees them) and
        `batch`'s targets, scaled as `task_losses` scales them."""
        with self.autocast:
            return self.task_losses(self.forward(inputs), batch, scales)

    def check_first_backward(self, losses: list[torch.Tensor], total: object) -> None:
        """After the run's first `weighting.backward`: a plug-in's weighting kept its contract
        (`check_backward`); mtlrun's own are tested instead."""
        if self.plugin_weighting is not None:
            check_backward(self.plugin_weighting, losses, total, self.model.parameters())

    def check_logged(self, logged: object) -> None:
        """What a plug-in's weighting logs is a dict of numbers (`check_logged`)."""
        if self.plugin_weighting is not None:
            check_logged(self.plugin_weighting, logged)

    @cached_property
    def plugin_weighting(self) -> str | None:
        """`weighting=NAME` with its plug-in, for messages, where a plug-in provides it."""
        name = str(self.cfg.weighting.name)
        if WEIGHTINGS.plugin_builder(name) is None:
            return None
        return WEIGHTINGS.origin(name, "weighting")

    @property
    def reconstruction(self) -> Task | None:
        """The (first) task that reconstructs the input, for image grids."""
        return next((task for task in self.tasks if task.reconstructs), None)


def build(cfg: DictConfig, ranks: Ranks = SINGLE) -> Experiment:
    """Build from a config `mtlrun.compose.validate` passed: the data loaded, the tasks checked
    against it and the backbone, the model, weighting and optimiser made. Every part's config is
    parsed (and so checked) as it is built. Under DDP (`ranks`), each rank builds the same
    experiment on its own device. A plug-in's part that raises is one line naming it."""
    try:
        return assemble(cfg, ranks)
    except Exception as error:
        fault = plugin_fault(cfg, error)
        if fault is None:
            raise
        raise fault from error


def assemble(cfg: DictConfig, ranks: Ranks) -> Experiment:
    trainer = parse(TrainerConfig, cfg.trainer, "trainer")
    device = ranks.device(resolve_device(str(cfg.device)))
    seed_everything(cfg.seed, trainer.deterministic)
    with allocating(f"dataset={cfg.dataset.name}", data_settings(cfg.dataset)):
        data = load_data(cfg.dataset, device, cfg.seed)

    def make_backbone() -> Backbone:
        return BACKBONES.build(cfg.backbone.name, cfg.backbone, "backbone", data.info)

    def make_model() -> tuple[list[Task], MultiTaskModel]:
        # The tasks check themselves against a backbone like the model's, which is then
        # dropped: the model makes its own (one, or one per task) from the same factory.
        tasks = build_tasks(cfg.tasks, data.info, make_backbone())
        torch.manual_seed(cfg.seed)  # the same initial weights, whatever the checks drew
        model = SHARING.build(cfg.sharing.name, cfg.sharing, "sharing", make_backbone, tasks)
        return tasks, model

    # Each rank on the CPU holds a model in this machine's memory.
    copies = ranks.size if device.type == "cpu" else 1
    check_model_fits(cfg, lambda: make_model()[1], device, copies)
    with allocating("the model", largest_setting(cfg)):
        tasks, model = make_model()
        model = model.to(device)
    model.check_epochs(trainer.epochs)
    loss_tasks = [task for task in tasks if task.has_loss]
    check_sharing(cfg.weighting, cfg.sharing, model)
    weighting = WEIGHTINGS.build(cfg.weighting.name, cfg.weighting, "weighting", loss_tasks, model)
    if WEIGHTINGS.plugin_builder(cfg.weighting.name) is not None:
        check_signatures(weighting, WEIGHTINGS.origin(cfg.weighting.name, "weighting"))
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
        check_measurable(experiment)
        experiment.affinity = TaskAffinity(experiment, trainer.task_affinity_every)
    return experiment
