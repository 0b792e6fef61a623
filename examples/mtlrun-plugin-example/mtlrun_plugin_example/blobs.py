"""`dataset=gaussian_blobs`: vectors in R^D drawn from K Gaussian clusters; needs no files.

The K centres are μ_k ~ N(0, I_D); an example picks its cluster c uniformly and is
x = μ_c + spread·ε with ε ~ N(0, I_D). Targets: `cluster`, the index c (K classes), and
`radius`, the Euclidean norm ‖x‖ (a real number: how far from the origin the example lies, which
the cluster alone does not tell). The same seed gives the same centres and examples.
"""

from dataclasses import dataclass

import torch

from mtlrun import register
from mtlrun.config import check_range
from mtlrun.data.registry import RawData
from mtlrun.data.split import DatasetInfo, Split, TargetInfo
from mtlrun.errors import ConfigError


@dataclass
class GaussianBlobsConfig:
    name: str
    n_train: int = 2000
    n_test: int = 1000
    val_size: int = 200  # carved out of the n_train training examples
    input_dim: int = 8  # D
    num_clusters: int = 4  # K
    spread: float = 1.0  # each cluster's standard deviation (the centres' is 1)
    seed: int = 0

    def check(self, key: str) -> None:
        check_range(f"{key}.n_train", self.n_train, 1)
        check_range(f"{key}.n_test", self.n_test, 1)
        if not 0 <= self.val_size < self.n_train:
            raise ConfigError(
                f"{key}.val_size={self.val_size} must be at least 0 and below "
                f"{key}.n_train={self.n_train}"
            )
        check_range(f"{key}.input_dim", self.input_dim, 1)
        check_range(f"{key}.num_clusters", self.num_clusters, 2)
        check_range(f"{key}.spread", self.spread, 0, low_open=True)


def sample(cfg: GaussianBlobsConfig, centres: torch.Tensor, n: int, generator: torch.Generator):
    cluster = torch.randint(cfg.num_clusters, (n,), generator=generator)
    x = centres[cluster] + cfg.spread * torch.randn((n, cfg.input_dim), generator=generator)
    return Split(x, {"cluster": cluster, "radius": x.norm(dim=1)})


@register.dataset("gaussian_blobs", schema=GaussianBlobsConfig)
def gaussian_blobs(cfg: GaussianBlobsConfig) -> RawData:
    generator = torch.Generator().manual_seed(cfg.seed)
    centres = torch.randn((cfg.num_clusters, cfg.input_dim), generator=generator)
    train = sample(cfg, centres, cfg.n_train, generator)
    test = sample(cfg, centres, cfg.n_test, generator)
    targets = {"cluster": TargetInfo(num_classes=cfg.num_clusters), "radius": TargetInfo(dim=1)}
    return RawData(DatasetInfo(cfg.name, (cfg.input_dim,), targets), train, test, cfg.val_size)
