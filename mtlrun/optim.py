"""Optimisers and learning-rate schedules (stepped once per optimiser step)."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from omegaconf import DictConfig
from torch import nn

from mtlrun.config import check_choice, check_range
from mtlrun.errors import ConfigError
from mtlrun.registry import Registry

SCHEDULES = ("none", "cosine", "step", "onecycle")


@dataclass
class OptimConfig:
    """What every optimiser has: the learning rate, weight decay and the schedule (stepped
    once per optimiser step)."""

    name: str
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "none"  # none | cosine | step | onecycle
    step_epochs: int = 10  # schedule=step: decay the lr every this many epochs
    gamma: float = 0.1  # schedule=step: the decay factor

    def check(self, key: str) -> None:
        check_choice(f"{key}.schedule", self.schedule, SCHEDULES)
        check_range(f"{key}.lr", self.lr, 0, low_open=True)
        check_range(f"{key}.weight_decay", self.weight_decay, 0)
        if self.schedule == "step":
            check_range(f"{key}.step_epochs", self.step_epochs, 1)
            check_range(f"{key}.gamma", self.gamma, 0, low_open=True)


@dataclass
class AdamConfig(OptimConfig):
    """`optim=adam`: Adam (fused), its L2 weight decay added to the gradient."""

    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    # added to √v; its effect depends on the loss scale (losses are batch means)
    eps: float = 1.0e-8

    def check(self, key: str) -> None:
        super().check(key)
        if len(self.betas) != 2:
            raise ConfigError(
                f"{key}.betas={self.betas} must be two values in [0, 1), e.g. [0.9, 0.999]"
            )
        for index, beta in enumerate(self.betas):
            check_range(f"{key}.betas[{index}]", beta, 0, 1)
        check_range(f"{key}.eps", self.eps, 0, low_open=True)


@dataclass
class AdamWConfig(AdamConfig):
    """`optim=adamw`: AdamW (fused), Adam with the weight decay decoupled from the gradient."""

    weight_decay: float = 0.01


@dataclass
class SGDConfig(OptimConfig):
    """`optim=sgd`: SGD with momentum, by default on the cosine schedule."""

    lr: float = 0.05
    schedule: str = "cosine"  # none | cosine | step | onecycle
    momentum: float = 0.9
    nesterov: bool = False

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.momentum", self.momentum, 0, 1)


OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optim", group="optim")
"""Optimisers, built as `builder(config, parameter_groups)`; the groups carry their own lr."""


# The fused kernel updates all parameters in one pass: on a small model the optimiser step
# otherwise costs a third of the training step.
@OPTIMIZERS.register("adam", schema=AdamConfig)
def adam(cfg: AdamConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.Adam(
        groups, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True
    )


@OPTIMIZERS.register("adamw", schema=AdamWConfig)
def adamw(cfg: AdamWConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.AdamW(
        groups, betas=tuple(cfg.betas), eps=cfg.eps, weight_decay=cfg.weight_decay, fused=True
    )


@OPTIMIZERS.register("sgd", schema=SGDConfig)
def sgd(cfg: SGDConfig, groups: list[dict]) -> torch.optim.Optimizer:
    return torch.optim.SGD(
        groups, momentum=cfg.momentum, nesterov=cfg.nesterov, weight_decay=cfg.weight_decay
    )


def parameter_groups(
    parameters: list[nn.Parameter], lr: float, scaled: Sequence[tuple[list[nn.Parameter], float]]
) -> list[dict]:
    """The trainable `parameters` at `lr`, first, then one group per (parameters, multiple)
    pair of `scaled` at lr × multiple (those parameters leave the first group)."""
    groups = []
    moved = set()
    for members, scale in scaled:
        trainable = [p for p in members if p.requires_grad]
        if trainable:
            groups.append({"params": trainable, "lr": lr * scale})
            moved.update(id(p) for p in trainable)
    rest = [p for p in parameters if p.requires_grad and id(p) not in moved]
    return [{"params": rest, "lr": lr}, *groups]


def build_optimizer(
    node: DictConfig,
    parameters: list[nn.Parameter],
    steps_per_epoch: int,
    epochs: int,
    scaled: Sequence[tuple[list[nn.Parameter], float]] = (),
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler | None]:
    """The optimiser over `parameters` at `optim.lr`, except those in `scaled`, which train at
    `optim.lr` times their multiple (`MultiTaskModel.learning_rate_scales`), and its schedule."""
    name = str(node.name)
    cfg: OptimConfig = OPTIMIZERS.config(name, node, "optim")
    optimizer = OPTIMIZERS.get(name)(cfg, parameter_groups(parameters, cfg.lr, scaled))
    total_steps = max(1, steps_per_epoch * epochs)
    if cfg.schedule == "cosine":
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total_steps)
    elif cfg.schedule == "step":
        scheduler = torch.optim.lr_scheduler.StepLR(
            optimizer, step_size=cfg.step_epochs * steps_per_epoch, gamma=cfg.gamma
        )
    elif cfg.schedule == "onecycle":
        peaks = [group["lr"] for group in optimizer.param_groups]
        scheduler = torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=peaks, total_steps=total_steps
        )
    else:
        scheduler = None
    return optimizer, scheduler
