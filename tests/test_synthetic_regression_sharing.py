"""Sharing pays off where it should: on synthetic_regression the low-data task y3 (20 labelled
training examples) predicts far better with a trunk shared with the other tasks than alone."""

from pathlib import Path

import pytest

from mtlrun.lifecycle import train
from tests.conftest import compose_config

pytestmark = pytest.mark.slow  # long trainings (three seeds each): that sharing pays off

SEEDS = (0, 1, 2)
SMALL = [
    "+experiment=synthetic_regression",
    "device=cpu",
    "dataset.n_train=1000",
    "dataset.n_test=500",
    "dataset.val_size=100",
    "trainer.epochs=12",
    "trainer.eval_every=100",
    "trainer.progress=false",
]


def low_data_mse(folder: Path, seed: int, overrides: list[str]) -> float:
    """y3's test MSE after training the experiment (small) with `overrides`."""
    run_dir = folder / f"seed{seed}_{'_'.join(overrides)}"
    run_dir.mkdir(parents=True)
    summary = train(compose_config([*SMALL, f"seed={seed}", *overrides]), run_dir)
    return summary["metrics"]["test/y3/mse"]


@pytest.fixture(scope="module")
def shared(tmp_path_factory) -> list[float]:
    folder = tmp_path_factory.mktemp("hard")
    return [low_data_mse(folder, seed, ["sharing=hard"]) for seed in SEEDS]


def assert_clearly_better(shared: list[float], baseline: list[float]) -> None:
    assert all(s < b for s, b in zip(shared, baseline, strict=True)), (shared, baseline)
    assert sum(shared) < 0.6 * sum(baseline), (shared, baseline)


def test_hard_sharing_beats_the_low_data_task_trained_alone(shared, tmp_path):
    alone = [
        low_data_mse(
            tmp_path, seed, ["sharing=hard", "~task@tasks.y0", "~task@tasks.y1", "~task@tasks.y2"]
        )
        for seed in SEEDS
    ]
    assert_clearly_better(shared, alone)


def test_hard_sharing_beats_single_task(shared, tmp_path):
    single = [low_data_mse(tmp_path, seed, ["sharing=single_task"]) for seed in SEEDS]
    assert_clearly_better(shared, single)
