"""Regression tasks with known shared structure, one of them short of labels.

The multi-task feature learning setting of Argyriou, Evgeniou & Pontil (NeurIPS 2006): inputs
x ~ N(0, I_D); every task reads the same low-dimensional projection z = xB (B: D×k with
orthonormal columns, k ≪ D) through its own weights, y_t = z·u_t + ε_t, with task-specific
noise ε_t. The last task keeps its training target on only `low_data_examples` examples (the
rest are NaN, i.e. missing): on its own it must find k useful directions among D from a handful
of examples, while a shared trunk learns them from the other tasks.

With `input_noise` set, the inputs themselves carry the structure: x = sBᵀ + σ·ε with
s ~ N(0, I_k), ε ~ N(0, I_D), so they lie near the k-dimensional subspace the targets read. That
is the setting where an autoencoder trained on the inputs alone finds codes the tasks can use
(two-stage training, concatenated codes); with isotropic inputs no code narrower than D can.
"""

import torch

from mtlrun.data.registry import RawData
from mtlrun.data.split import DatasetInfo, Split, TargetInfo
from mtlrun.errors import ConfigError
from mtlrun.parts import DATASETS
from mtlrun.schemas.dataset import SyntheticRegressionConfig


def target_names(num_tasks: int) -> list[str]:
    return [f"y{t}" for t in range(num_tasks)]


def sample(
    cfg: SyntheticRegressionConfig,
    basis: torch.Tensor,
    weights: torch.Tensor,
    n: int,
    generator: torch.Generator,
) -> Split:
    if cfg.input_noise is None:
        x = torch.randn((n, cfg.input_dim), generator=generator)
    else:
        signal = torch.randn((n, cfg.latent_dim), generator=generator) @ basis.T
        x = signal + cfg.input_noise * torch.randn((n, cfg.input_dim), generator=generator)
    y = x @ basis @ weights + cfg.noise * torch.randn((n, cfg.num_tasks), generator=generator)
    return Split(x, dict(zip(target_names(cfg.num_tasks), y.T.contiguous(), strict=True)))


@DATASETS.register("synthetic_regression", schema=SyntheticRegressionConfig)
def synthetic_regression(cfg: SyntheticRegressionConfig) -> RawData:
    if not 1 <= cfg.latent_dim <= cfg.input_dim:
        raise ConfigError(
            f"dataset.latent_dim={cfg.latent_dim} must be between 1 and "
            f"dataset.input_dim={cfg.input_dim}"
        )
    if cfg.num_tasks < 1:
        raise ConfigError(f"dataset.num_tasks={cfg.num_tasks} must be at least 1")
    if not 0 <= cfg.low_data_examples <= cfg.n_train:
        raise ConfigError(
            f"dataset.low_data_examples={cfg.low_data_examples} must be between 0 and "
            f"dataset.n_train={cfg.n_train}"
        )
    if cfg.input_noise is not None and cfg.input_noise < 0:
        raise ConfigError(f"dataset.input_noise={cfg.input_noise} must be at least 0 (or null)")
    generator = torch.Generator().manual_seed(cfg.seed)
    basis, _ = torch.linalg.qr(torch.randn((cfg.input_dim, cfg.latent_dim), generator=generator))
    weights = torch.randn((cfg.latent_dim, cfg.num_tasks), generator=generator)
    weights /= weights.norm(dim=0)  # every task's signal has unit variance, so MSEs compare
    train = sample(cfg, basis, weights, cfg.n_train, generator)
    test = sample(cfg, basis, weights, cfg.n_test, generator)
    low_data = target_names(cfg.num_tasks)[-1]
    train.targets[low_data][cfg.low_data_examples :] = float("nan")
    targets = {name: TargetInfo(dim=1) for name in target_names(cfg.num_tasks)}
    info = DatasetInfo(cfg.name, (cfg.input_dim,), targets)
    return RawData(info, train, test, cfg.val_size)
