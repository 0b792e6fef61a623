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

__all__ = ["TASKS", "Direction", "Task", "TaskConfig", "build_tasks"]


def build_tasks(node: DictConfig, info: DatasetInfo, backbone: Backbone) -> list[Task]:
    """Build every task in `tasks` and check each against the data and the backbone."""
    if not node:
        raise ConfigError("tasks is empty; pick at least one, e.g. tasks=[reconstruction]")
    tasks: list[Task] = []
    for name, task_node in node.items():
        if not isinstance(task_node, DictConfig) or "type" not in task_node:
            raise ConfigError(
                f"tasks.{name} needs a `type`; choose one of: {', '.join(TASKS.names)}"
            )
        check_choice(f"tasks.{name}.type", task_node.type, TASKS.names)
        tasks.append(TASKS.build(task_node.type, task_node, f"tasks.{name}", str(name)))
    for task in tasks:
        task.check(info, backbone, tasks)
    if not any(task.has_loss for task in tasks):
        raise ConfigError("no task has a loss to train on; add e.g. tasks=[reconstruction,...]")
    return tasks
