"""Tasks: heads, losses and metrics, registered by `type` and named by their key in `tasks`."""

from omegaconf import DictConfig

import mtlrun.plugins as plugins
from mtlrun.backbones import Backbone
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError, PluginError
from mtlrun.parts import TASKS, task_configs
from mtlrun.schemas.task import TaskConfig
from mtlrun.tasks.base import Direction, Task

__all__ = [
    "TASKS",
    "Direction",
    "Task",
    "TaskConfig",
    "build_tasks",
    "check_directions",
    "check_metrics",
    "task_configs",
]


def build_tasks(node: DictConfig, info: DatasetInfo, backbone: Backbone) -> list[Task]:
    """Build every task in `tasks` and check each against the data and the backbone."""
    configs = task_configs(node)
    tasks: list[Task] = [
        TASKS.make(config.type, config, f"tasks.{name}", name) for name, config in configs.items()
    ]
    for task in tasks:
        task.check(info, backbone, tasks)
        check_directions(task)  # after `check`: a primary metric may depend on the data
        check_code(task, backbone)
    if not any(task.has_loss for task in tasks):
        raise ConfigError(
            "no task has a loss to train on; "
            "add one, e.g. +task@tasks.reconstruction=reconstruction"
        )
    return tasks


def origin(task: Task) -> str:
    """The task as messages name it, with the plug-in its class comes from."""
    plugin = plugins.owner(type(task).__module__)
    return f"plug-in {plugin}: tasks.{task.name}" if plugin else f"tasks.{task.name}"


def check_directions(task: Task) -> None:
    """A task's `directions` (each metric lower or higher is better) and its primary metric,
    one of them: what reports and Δm read, checked before training."""
    cls, where = type(task).__name__, origin(task)
    for metric, direction in task.directions.items():
        if direction not in ("min", "max"):
            raise PluginError(
                f"{where}: {cls}.directions[{metric!r}]={direction!r}; a direction is 'min' "
                "(lower is better) or 'max'"
            )
    primary = task.primary_metric
    if primary is not None and primary not in task.directions:
        raise PluginError(
            f"{where}: {cls}.primary_metric={primary!r} is not in {cls}.directions "
            f"({', '.join(task.directions) or 'empty'}); add it there with 'min' or 'max'"
        )
    if task.has_loss and "loss" not in task.directions:
        raise PluginError(
            f"{where}: {cls}.directions has no 'loss'; a task with a loss reports it: add "
            "'loss': 'min'"
        )


def check_metrics(task: Task, reported: set[str]) -> None:
    """The metrics an evaluation summed for `task` (`metric_sums`, `final_metric_sums`): each
    one in its `directions`, and its loss among them if it has one."""
    cls, where = type(task).__name__, origin(task)
    undeclared = sorted(reported - set(task.directions))
    if undeclared:
        raise PluginError(
            f"{where}: {cls} reports the metric {undeclared[0]!r}, which {cls}.directions "
            f"does not list; add {undeclared[0]!r}: 'min' or 'max' (lower or higher is better)"
        )
    if task.has_loss and "loss" not in reported:
        raise PluginError(
            f"{where}: {cls}.metric_sums returned no 'loss'; it must return the sum of the "
            "task's loss over the batch, as Task.metric_sums does"
        )


def check_code(task: Task, backbone: Backbone) -> None:
    """A per-pixel task needs a backbone whose code is a feature map, every other task with a
    head one whose code is a vector per example."""
    if task.per_pixel and not backbone.per_pixel:
        raise ConfigError(
            f"tasks.{task.name} predicts per pixel, from a backbone whose code is a feature "
            "map; use backbone=segnet or resnet50_dilated"
        )
    if backbone.per_pixel and not task.per_pixel and task.has_loss:
        raise ConfigError(
            f"tasks.{task.name} reads a code per example, but this backbone's code is a feature "
            "map per pixel; give it a per-pixel task (segmentation, depth, normal) or another "
            "backbone"
        )
