"""Generation: sampling images from the prior through the reconstruction decoder."""

from dataclasses import dataclass

from mtlrun.backbones import Backbone
from mtlrun.config import check_range
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.tasks.base import TASKS, Task, TaskConfig


@dataclass
class GenerationConfig(TaskConfig):
    weight: float = 0.0  # it has no loss
    num_samples: int = 64  # images in each prior-sample grid

    def check(self, key: str) -> None:
        super().check(key)
        check_range(f"{key}.num_samples", self.num_samples, 1)


@TASKS.register("generation", schema=GenerationConfig)
class Generation(Task):
    """An evaluation task: it has no loss of its own, because a VAE's generative objective is
    already its ELBO (the reconstruction task's loss: likelihood plus β·KL). It checks that
    the model can generate and sets the size of the prior-sample grids written each evaluation."""

    has_loss = False

    def __init__(self, cfg: GenerationConfig, name: str) -> None:
        super().__init__(name, 0.0)
        self.prior_samples = cfg.num_samples

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        if not backbone.has_prior:
            raise ConfigError(
                f"tasks.{self.name}: generation needs a backbone with a prior; "
                "use backbone=vae or backbone=conv_vae"
            )
        if not any(task.reconstructs for task in tasks):
            raise ConfigError(
                f"tasks.{self.name}: generation samples through the reconstruction decoder; "
                "add the reconstruction task (+task@tasks.reconstruction=reconstruction)"
            )
