"""A run writes the folder of DESIGN §6, with the right keys, and survives bad turns."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtlrun.checkpoint import load_checkpoint
from mtlrun.errors import TrainingDiverged, UserError
from mtlrun.train import train
from tests.conftest import TINY, compose_config


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_run_folder_has_every_file_and_key(run_dir):
    cfg = compose_config([*TINY, "tasks=[reconstruction,class,generation]"])
    summary = train(cfg, run_dir)

    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "completed" and meta["seed"] == 0 and meta["device"] == "cpu"
    assert meta["versions"]["torch"] == torch.__version__
    assert meta["start_time"] <= meta["end_time"]
    assert OmegaConf.load(run_dir / "config.resolved.yaml") == cfg

    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [(r["split"], r["epoch"]) for r in records] == [
        ("train", 1),
        ("val", 1),
        ("train", 2),
        ("val", 2),
        ("test", 2),
    ]
    for record in records:
        assert {"epoch", "step", "split", "seconds"} <= set(record)
    val = records[1]
    for key in [
        "val/loss",
        "val/reconstruction/nelbo",
        "val/reconstruction/bce",
        "val/reconstruction/kl",
        "val/class/acc",
        "val/class/nll",
    ]:
        assert key in val, key
    assert records[-1]["step"] == 2 * 6  # 384 training examples in batches of 64

    saved = json.loads((run_dir / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    metrics = saved["metrics"]
    assert 0 <= metrics["test/class/acc"] <= 1
    assert metrics["test/reconstruction/nll_iw"] < metrics["test/reconstruction/nelbo"] + 1
    assert saved["best_epoch"] in (1, 2)

    images = {p.name for p in (run_dir / "images").iterdir()}
    assert {
        "recon_e001.png",
        "recon_e002.png",
        "samples_e001.png",
        "samples_e002.png",
        "predictions_e002.png",
        "interpolation.png",
    } <= images
    # 16 validation images, 3× enlarged, labelled with the predicted class
    assert Image.open(run_dir / "images" / "predictions_e002.png").size == (8 * 86 + 2, 2 * 86 + 2)
    # 2 input rows + 2 output rows of 8 images of 28 px with 2 px padding
    assert Image.open(run_dir / "images" / "recon_e002.png").size == (8 * 30 + 2, 4 * 30 + 2)
    assert Image.open(run_dir / "images" / "samples_e002.png").size == (8 * 30 + 2, 8 * 30 + 2)

    last = load_checkpoint(run_dir / "checkpoints" / "last.pt")  # weights_only=True inside
    assert last["progress"]["epoch"] == 3 and last["progress"]["step"] == 12
    assert {"model", "optimizer", "scheduler", "rng", "progress"} <= set(last)
    assert (run_dir / "checkpoints" / "best.pt").is_file()
    log = (run_dir / "train.log").read_text()
    assert "epoch 2/2" in log and "test (final model)" in log
    assert not list(run_dir.rglob("*.tmp"))  # atomic writes leave no temporary files


def test_same_seed_same_numbers(tmp_path):
    cfg = compose_config([*TINY, "tasks=[reconstruction,class]", "trainer.deterministic=true"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = train(cfg, tmp_path / "a")["metrics"]
    b = train(cfg, tmp_path / "b")["metrics"]
    assert a == b


def test_loss_goes_down_on_the_validation_split(run_dir):
    cfg = compose_config(
        [
            *TINY,
            "tasks=[reconstruction,class]",
            "trainer.epochs=6",
            "backbone=dense_ae",
            "optim.lr=3e-3",
        ]
    )
    train(cfg, run_dir)
    val = [r for r in read_jsonl(run_dir / "metrics.jsonl") if r["split"] == "val"]
    assert val[-1]["val/loss"] < val[0]["val/loss"]
    assert val[-1]["val/class/acc"] > 0.5


def test_nan_loss_stops_with_a_clear_message(run_dir):
    cfg = compose_config(
        [*TINY, "tasks=[class]", "backbone=dense_ae", "optim.lr=1e30", "optim.name=sgd"]
    )
    with pytest.raises(TrainingDiverged, match="lower optim.lr"):
        train(cfg, run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and "optim.lr" in meta["error"]


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or unreadable"):
        load_checkpoint(path)


def test_bf16_autocast_trains(run_dir):
    cfg = compose_config([*TINY, "tasks=[class]", "backbone=cnn", "trainer.precision=bf16"])
    summary = train(cfg, run_dir)
    assert summary["metrics"]["test/class/acc"] > 0.3


def test_schedules_change_the_learning_rate():
    from mtlrun.train import build

    for schedule in ["cosine", "step", "onecycle"]:
        cfg = compose_config(
            [*TINY, "tasks=[class]", f"optim.schedule={schedule}", "optim.step_epochs=1"]
        )
        experiment = build(cfg)
        first = experiment.optimizer.param_groups[0]["lr"]
        for _ in range(7):
            experiment.optimizer.step()
            experiment.scheduler.step()
        assert experiment.optimizer.param_groups[0]["lr"] != first, schedule
