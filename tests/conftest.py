import os
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

import mtlrun.parts  # noqa: F401  (the parts' schemas in Hydra's ConfigStore)
from mtlrun.config import config_dir

DATA_ROOT = os.environ.get("MTLRUN_DATA")
HAS_MNIST = bool(DATA_ROOT) and (Path(DATA_ROOT) / "MNIST" / "raw").is_dir()
needs_mnist = pytest.mark.skipif(not HAS_MNIST, reason="set MTLRUN_DATA to a folder with MNIST")

# Small, fast settings for runs on generated data.
TINY = [
    "dataset=synthetic",
    "dataset.n_train=512",
    "dataset.n_test=128",
    "dataset.val_size=128",
    "device=cpu",
    "trainer.epochs=2",
    "trainer.batch_size=64",
    "trainer.progress=false",
]


def compose_config(overrides: list[str], *, with_hydra: bool = False) -> DictConfig:
    """The composed config; `with_hydra` keeps Hydra's own node (sweeper, launcher)."""
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        return compose("train", overrides=overrides, return_hydra_config=with_hydra)


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path
