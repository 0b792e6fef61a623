"""Optimisers and learning-rate schedules (stepped once per optimiser step)."""

from collections.abc import Sequence

import torch
from omegaconf import DictConfig
from torch import nn

from mtlrun.parts import OPTIMIZERS
from mtlrun.schemas.optim import AdamConfig, AdamWConfig, OptimConfig, SGDConfig


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
    optimizer = OPTIMIZERS.make(name, cfg, "optim", parameter_groups(parameters, cfg.lr, scaled))
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
