"""Tasks: heads, losses and metrics, registered by `type` and named by their key in `tasks`."""

from omegaconf import DictConfig

from mtlrun.backbones import Backbone
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import TASKS, task_configs
from mtlrun.schemas.task import TaskConfig
from mtlrun.tasks.base import Direction, Task

__all__ = ["TASKS", "Direction", "Task", "TaskConfig", "build_tasks", "task_configs"]


def build_tasks(node: DictConfig, info: DatasetInfo, backbone: Backbone) -> list[Task]:
    """Build every task in `tasks` and check each against the data and the backbone."""
    tasks: list[Task] = [
        TASKS.get(config.type)(config, name) for name, config in task_configs(node).items()
    ]
    for task in tasks:
        task.check(info, backbone, tasks)
        check_code(task, backbone)
    if not any(task.has_loss for task in tasks):
        raise ConfigError(
            "no task has a loss to train on; "
            "add one, e.g. +task@tasks.reconstruction=reconstruction"
        )
    return tasks


def check_code(task: Task, backbone: Backbone) -> None:
    """A per-pixel task needs a backbone whose code is a feature map, every other task with a
    head one whose code is a vector per example."""
    if task.per_pixel and not backbone.per_pixel:
        raise ConfigError(
            f"tasks.{task.name} predicts per pixel, from a backbone whose code is a feature "
            "map; use backbone=segnet"
        )
    if backbone.per_pixel and not task.per_pixel and task.has_loss:
        raise ConfigError(
            f"tasks.{task.name} reads a code per example, but this backbone's code is a feature "
            "map per pixel; give it a per-pixel task (segmentation, depth, normal) or another "
            "backbone"
        )
