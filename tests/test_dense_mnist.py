"""`+experiment=dense_mnist`: SegNet with the three per-pixel tasks trains with every method of
the catalogue, writes its per-pixel grids, and (full tier) learns every task well past what a
constant prediction scores."""

import json
from functools import cache
from itertools import islice
from pathlib import Path

import pytest
import torch

import mtlrun.data.dense_mnist
from mtlrun.config import config_dir
from mtlrun.data import IGNORE_LABEL
from mtlrun.data.torchvision_sets import load_torchvision
from mtlrun.evaluate import evaluate
from mtlrun.experiment import build
from mtlrun.schemas.dataset import TorchvisionDatasetConfig
from mtlrun.step import train_step
from tests.conftest import compose_config, needs_mnist
from tests.helpers import run_cli

METHODS = sorted(path.stem for path in (config_dir() / "method").glob("*.yaml"))
TINY = [
    "dataset.n_train=48",
    "dataset.n_test=16",
    "dataset.val_size=16",
    "backbone.channels=[4,8]",
    "trainer.batch_size=16",
    "trainer.epochs=1",
    "trainer.progress=false",
    "device=cpu",
]
METRICS = {
    "segmentation": {"loss", "miou", "pixel_acc"},
    "depth": {"loss", "abs_err", "rel_err"},
    "normal": {"loss", "mean_angle", "median_angle", "within_11.25", "within_22.5", "within_30"},
}


@cache
def few_digits(dataset_class: type) -> tuple[torch.Tensor, ...]:
    """The first 48 training and 16 test images of MNIST, read once for every test here."""
    cfg = TorchvisionDatasetConfig(name="mnist", download=False)
    train_x, train_y, test_x, test_y = load_torchvision(dataset_class, cfg)
    return train_x[:48].clone(), train_y[:48].clone(), test_x[:16].clone(), test_y[:16].clone()


@pytest.fixture
def small_mnist(monkeypatch):
    monkeypatch.setattr(
        mtlrun.data.dense_mnist, "load_torchvision", lambda cls, cfg: few_digits(cls)
    )


@needs_mnist
@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_the_dense_tasks(method, small_mnist):
    cfg = compose_config(["+experiment=dense_mnist", f"+method={method}", *TINY])
    experiment = build(cfg)
    weights = [p.detach().clone() for p in experiment.model.parameters()]
    for batch in islice(experiment.data.train.batches(16, torch.Generator()), 2):
        train_step(experiment, batch)
    assert any(
        not torch.equal(before, after.detach())
        for before, after in zip(weights, experiment.model.parameters(), strict=True)
    )
    metrics = evaluate(experiment, experiment.data.val, "val")
    assert {key for key in metrics if key.count("/") == 2} == {
        f"val/{task}/{metric}" for task, names in METRICS.items() for metric in names
    }
    assert all(torch.isfinite(torch.tensor(value)) for value in metrics.values()), metrics


@needs_mnist
def test_a_run_draws_input_target_and_prediction_of_every_dense_task(tmp_path, small_mnist):
    result = run_cli(tmp_path, "train", "+experiment=dense_mnist", *TINY, check=True)
    run = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["primary_metrics"] == {
        "segmentation": "test/segmentation/miou",
        "depth": "test/depth/abs_err",
        "normal": "test/normal/mean_angle",
    }
    assert summary["directions"]["test/normal/within_11.25"] == "max"
    from PIL import Image

    for task in METRICS:
        grid = Image.open(run / "images" / f"{task}_e001.png")
        # three rows (input, target, prediction) of 8 images enlarged to 96 pixels, 2 apart
        assert grid.size == (2 + 8 * 98, 2 + 3 * 98)


@needs_mnist
def test_the_dense_mnist_targets_have_every_kind_of_pixel(small_mnist):
    data = build(compose_config(["+experiment=dense_mnist", *TINY])).data
    labels = data.train.targets["segmentation"]
    assert {IGNORE_LABEL, 10} <= set(labels.unique().tolist())
    assert len(labels.unique()) > 8  # most digits, background and ignored edges
    assert data.train.targets["normal"].shape == (len(data.train), 3, 32, 32)


@pytest.mark.slow
@needs_mnist
def test_dense_mnist_learns_every_task_past_a_constant_prediction(tmp_path):
    """The default experiment (10 epochs; a run of it reached mIoU 0.31, depth abs_err 0.13
    and a mean normal error of 5.0°: README)."""
    result = run_cli(
        tmp_path,
        "train",
        "+experiment=dense_mnist",
        "device=cpu",
        "trainer.progress=false",
        check=True,
    )
    run = Path(result.stdout.strip().splitlines()[-1])
    test = json.loads((run / "summary.json").read_text())["metrics"]
    # Constant predictions score on the test split: background everywhere mIoU 0.078, depth 8
    # (the background's) abs_err 0.49, the normal (0, 0, 1) a mean angle of 11.8°.
    assert test["test/segmentation/miou"] > 0.2
    assert test["test/depth/abs_err"] < 0.25
    assert test["test/normal/mean_angle"] < 7.0
