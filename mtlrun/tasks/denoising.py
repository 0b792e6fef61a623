"""Denoising: reconstruct the clean image from a corrupted one (Vincent et al. 2008, 2010)."""

import torch
from torch import Tensor

from mtlrun.backbones import Backbone
from mtlrun.data import DatasetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import TASKS
from mtlrun.schemas.task import DenoisingConfig
from mtlrun.tasks.base import Task
from mtlrun.tasks.reconstruction import Reconstruction


@TASKS.register("denoising", schema=DenoisingConfig)
class Denoising(Reconstruction):
    """A reconstruction task whose inputs are corrupted: the loss, metrics and decoder are
    reconstruction's, and the targets stay the clean images.

    The corruption applies to the model's inputs, so every task sharing the encoder sees the
    corrupted images. It is drawn from torch's global random state, in evaluation too, so
    evaluation stays repeatable under a seed.
    """

    def __init__(self, cfg: DenoisingConfig, name: str) -> None:
        super().__init__(cfg, name)
        if cfg.noise_std < 0:
            raise ConfigError(f"tasks.{name}.noise_std={cfg.noise_std} must be at least 0")
        if not 0 <= cfg.mask_prob < 1:
            raise ConfigError(f"tasks.{name}.mask_prob={cfg.mask_prob} must be in [0, 1)")
        if cfg.noise_std == 0 and cfg.mask_prob == 0:
            raise ConfigError(
                f"tasks.{name}: noise_std and mask_prob are both 0, so nothing is corrupted; "
                "set one of them, or use the reconstruction task"
            )

    def check(self, info: DatasetInfo, backbone: Backbone, tasks: list[Task]) -> None:
        super().check(info, backbone, tasks)
        if not info.is_image:
            raise ConfigError(
                f"tasks.{self.name}: denoising corrupts pixels in [0, 1], but dataset={info.name} "
                "gives real vectors; use the reconstruction task"
            )

    def corrupt(self, inputs: Tensor) -> Tensor:
        if self.cfg.noise_std > 0:
            inputs = (inputs + self.cfg.noise_std * torch.randn_like(inputs)).clamp(0.0, 1.0)
        if self.cfg.mask_prob > 0:
            inputs = inputs * (torch.rand_like(inputs) >= self.cfg.mask_prob)
        return inputs
