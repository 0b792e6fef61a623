"""Generation: sampling images from the prior through the reconstruction decoder."""

from mtlrun.backbones import Backbone
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import TASKS
from mtlrun.schemas.task import GenerationConfig
from mtlrun.tasks.base import Task


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
