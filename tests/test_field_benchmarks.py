"""The experiments with the field's recipes: each trains on a fixture in its dataset's on-disk
layout (CelebA's, MTAN's NYUv2 and Cityscapes `.npy` folders) and composes with the papers'
settings."""

import json

import pytest

from mtlrun.schemas.dataset import CELEBA_ATTRIBUTES
from tests.conftest import compose_config
from tests.data.test_celeba import write_celeba
from tests.data.test_dense_scenes import write_scenes
from tests.helpers import run_cli


def test_the_celeba_experiment_trains_its_40_attribute_tasks_on_a_fixture(tmp_path):
    write_celeba(tmp_path / "data")
    result = run_cli(
        tmp_path,
        "train",
        "+experiment=celeba",
        f"dataset.root={tmp_path / 'data'}",
        "dataset.verify_checksums=false",
        "dataset.image_size=32",
        f"dataset.cache_dir={tmp_path / 'cache'}",
        "device=cpu",
        "trainer.epochs=1",
        "trainer.batch_size=4",
        "trainer.progress=false",
        check=True,
    )
    run = tmp_path / result.stdout.strip().splitlines()[-1]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 2  # 6 training faces, batches of 4
    for attribute in CELEBA_ATTRIBUTES:
        assert 0 <= summary["metrics"][f"test/{attribute}/acc"] <= 1
        assert f"val/{attribute}/acc" in summary["val_metrics"]


def test_the_celeba_recipe_is_sener_and_koltuns():
    cfg = compose_config(["+experiment=celeba"])
    assert list(cfg.tasks) == list(CELEBA_ATTRIBUTES)
    assert all(task.hidden_dims == [] for task in cfg.tasks.values())  # a linear head each
    assert (cfg.backbone.name, cfg.dataset.image_size) == ("cifar_resnet18", 64)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.step_epochs, cfg.optim.gamma) == (
        "adam",
        5e-4,
        10,
        0.85,
    )
    assert (cfg.trainer.epochs, cfg.trainer.batch_size) == (100, 256)


@pytest.mark.parametrize(
    ("experiment", "dataset", "backbone", "tasks", "batch_size"),
    [
        ("nyuv2_segnet", "nyuv2", "segnet", ["segmentation", "depth", "normal"], 2),
        ("cityscapes_segnet", "cityscapes", "segnet", ["segmentation", "depth"], 8),
        ("nyuv2_resnet", "nyuv2", "resnet50_dilated", ["segmentation", "depth", "normal"], 8),
    ],
)
def test_the_dense_recipes_compose_with_the_papers_settings(
    experiment, dataset, backbone, tasks, batch_size
):
    cfg = compose_config([f"+experiment={experiment}"])
    assert (cfg.dataset.name, cfg.backbone.name, list(cfg.tasks)) == (dataset, backbone, tasks)
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.schedule) == ("adam", 1e-4, "step")
    assert (cfg.optim.step_epochs, cfg.optim.gamma, cfg.trainer.epochs) == (100, 0.5, 200)
    assert cfg.trainer.batch_size == batch_size
    assert not cfg.dataset.augment


@pytest.mark.parametrize(
    ("experiment", "small", "tasks"),
    [
        ("nyuv2_segnet", ["backbone.channels=[4,8]"], {"segmentation", "depth", "normal"}),
        ("cityscapes_segnet", ["backbone.channels=[4,8]"], {"segmentation", "depth"}),
        pytest.param(
            "nyuv2_resnet",
            ["backbone.pretrained=false"],
            {"segmentation", "depth", "normal"},
            marks=pytest.mark.slow,  # a ResNet-50 on the CPU: 20 s
        ),
    ],
)
def test_the_dense_recipes_train_on_fixtures_in_mtans_layout(tmp_path, experiment, small, tasks):
    """The whole path of a dense benchmark: the loader, SegNet (or the dilated ResNet-50 with
    LibMTL's ASPP heads), the three per-pixel task types and their split metrics."""
    name = experiment.split("_")[0]
    root = tmp_path / name
    write_scenes(root, num_classes=7 if name == "cityscapes" else 13, normals=name == "nyuv2")
    result = run_cli(
        tmp_path,
        "train",
        f"+experiment={experiment}",
        f"dataset.root={root}",
        *small,
        "device=cpu",
        "trainer.epochs=1",
        "trainer.batch_size=3",
        "trainer.progress=false",
        check=True,
    )
    run = tmp_path / result.stdout.strip().splitlines()[-1]
    metrics = json.loads((run / "summary.json").read_text())["metrics"]
    primary = {"segmentation": "miou", "depth": "abs_err", "normal": "mean_angle"}
    assert {key.split("/")[1] for key in metrics if key.startswith("test/")} - {"loss"} == tasks
    for task in tasks:
        assert metrics[f"test/{task}/{primary[task]}"] >= 0
    assert 0 <= metrics["test/segmentation/miou"] <= 1
    assert (run / "images").is_dir()
