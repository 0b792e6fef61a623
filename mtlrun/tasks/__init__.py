"""Tasks: heads, losses and metrics, registered by `type` and named by their key in `tasks`."""

from omegaconf import DictConfig

from mtlrun.backbones import Backbone
from mtlrun.config import check_choice
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.tasks import (  # noqa: F401  (they register)
    classification,
    denoising,
    generation,
    reconstruction,
    regression,
)
from mtlrun.tasks.base import TASKS, Direction, Task, TaskConfig

__all__ = ["TASKS", "Direction", "Task", "TaskConfig", "build_tasks", "task_configs"]


def task_configs(node: DictConfig) -> dict[str, TaskConfig]:
    """Each task instance's config in `tasks`, by name, checked against its type's schema."""
    if not node:
        raise ConfigError("tasks is empty; add one, e.g. +task@tasks.reconstruction=reconstruction")
    configs: dict[str, TaskConfig] = {}
    for name, task_node in node.items():
        if not isinstance(task_node, DictConfig) or "type" not in task_node:
            raise ConfigError(
                f"tasks.{name} has no type; add it as +task@tasks.{name}=TYPE, one of: "
                f"{', '.join(TASKS.names)}"
            )
        check_choice(f"tasks.{name}.type", task_node.type, TASKS.names)
        configs[str(name)] = TASKS.config(task_node.type, task_node, f"tasks.{name}")
    return configs


def build_tasks(node: DictConfig, info: DatasetInfo, backbone: Backbone) -> list[Task]:
    """Build every task in `tasks` and check each against the data and the backbone."""
    tasks: list[Task] = [
        TASKS.get(config.type)(config, name) for name, config in task_configs(node).items()
    ]
    for task in tasks:
        task.check(info, backbone, tasks)
    if not any(task.has_loss for task in tasks):
        raise ConfigError(
            "no task has a loss to train on; "
            "add one, e.g. +task@tasks.reconstruction=reconstruction"
        )
    return tasks
