"""Generated image data that needs no files: one smooth prototype per class, plus noise."""

import torch
from torch import Tensor

from mtlrun.data.registry import RawData
from mtlrun.data.split import DIGIT_TARGETS, DatasetInfo, Split, TargetInfo, digit_targets
from mtlrun.errors import ConfigError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import SyntheticImagesConfig


def make_images(cfg: SyntheticImagesConfig, prototypes: Tensor, n: int, seed: int) -> Split:
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(cfg.num_classes, (n,), generator=generator)
    brightness = 0.7 + 0.3 * torch.rand((n, 1, 1, 1), generator=generator)
    noise = cfg.noise * torch.randn((n, *prototypes.shape[1:]), generator=generator)
    images = (prototypes[labels] * brightness + noise).clamp_(0.0, 1.0)
    if cfg.target_name == "digit":
        return Split(images, digit_targets(labels))
    return Split(images, {cfg.target_name: labels})


@DATASETS.register("synthetic", schema=SyntheticImagesConfig)
def synthetic(cfg: SyntheticImagesConfig) -> RawData:
    if cfg.target_name == "digit" and cfg.num_classes != 10:
        raise ConfigError("dataset.target_name=digit needs dataset.num_classes=10")
    generator = torch.Generator().manual_seed(cfg.seed)
    coarse = (torch.rand((cfg.num_classes, cfg.channels, 7, 7), generator=generator) > 0.6).float()
    size = (cfg.image_size, cfg.image_size)
    prototypes = torch.nn.functional.interpolate(coarse, size=size, mode="bilinear")
    train = make_images(cfg, prototypes, cfg.n_train, cfg.seed + 1)
    test = make_images(cfg, prototypes, cfg.n_test, cfg.seed + 2)
    if cfg.target_name == "digit":
        targets = DIGIT_TARGETS
    else:
        targets = {cfg.target_name: TargetInfo(num_classes=cfg.num_classes)}
    info = DatasetInfo(cfg.name, tuple(prototypes.shape[1:]), targets)
    return RawData(info, train, test, cfg.val_size)
