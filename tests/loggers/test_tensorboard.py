"""logger=tensorboard: scalars per metric key (x axis: epoch), image grids, hparams with the
final metrics, and no duplicated points after a resume; logger=csv: one row per record."""

import csv
import json

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from mtlrun.lifecycle import train
from mtlrun.parts import LOGGERS
from tests.conftest import TINY, compose_config


def events(run_dir):
    accumulator = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"images": 0})
    accumulator.Reload()
    return accumulator


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_run_logs_scalars_images_and_hparams(run_dir):
    cfg = compose_config(
        [
            *TINY,
            "logger=[tensorboard,csv]",
            "+task@tasks.class=classification",
            "tasks.reconstruction.iw_samples=0",
        ]
    )
    summary = train(cfg, run_dir)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    val = [r for r in records if r["split"] == "val"]

    logged = events(run_dir)
    scalars = set(logged.Tags()["scalars"])
    assert {"train/loss", "val/reconstruction/nelbo", "val/class/acc", "test/class/acc"} <= scalars
    nelbo = logged.Scalars("val/reconstruction/nelbo")
    assert [point.step for point in nelbo] == [1, 2]  # the epoch
    assert [point.value for point in nelbo] == pytest.approx(
        [r["val/reconstruction/nelbo"] for r in val]
    )
    test_acc = logged.Scalars("test/class/acc")
    assert [(point.step, point.value) for point in test_acc] == [
        (2, pytest.approx(summary["metrics"]["test/class/acc"]))
    ]

    assert {"images/reconstructions", "images/samples"} <= set(logged.Tags()["images"])
    grids = logged.Images("images/reconstructions")
    assert [grid.step for grid in grids] == [1, 2]
    assert (grids[-1].width, grids[-1].height) == (8 * 30 + 2, 4 * 30 + 2)
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(
        logged.PluginTagToContent("hparams")
    )

    rows = read_csv(run_dir / "metrics.csv")
    assert [(row["split"], int(row["epoch"])) for row in rows] == [
        (r["split"], r["epoch"]) for r in records
    ]
    assert float(rows[1]["val/class/acc"]) == pytest.approx(val[0]["val/class/acc"])
    assert rows[0]["val/class/acc"] == ""  # a train row has no validation metrics


def log_epochs(logger, epochs):
    for epoch in epochs:
        record = {"epoch": epoch, "step": 10 * epoch, "split": "val", "seconds": 1.0}
        logger.log_metrics({**record, "val/loss": float(epoch)})


@pytest.mark.parametrize("name", ["tensorboard", "csv"])
def test_resume_does_not_duplicate_points(run_dir, name):
    first = LOGGERS.build(name, {}, f"logger.{name}", run_dir)
    log_epochs(first, [1, 2, 3])
    first.close()  # stopped after logging epoch 3, before its checkpoint: resumes at epoch 3
    resumed = LOGGERS.build(name, {}, f"logger.{name}", run_dir)
    resumed.resume(3)
    log_epochs(resumed, [3, 4])
    resumed.close()

    if name == "tensorboard":
        points = events(run_dir).Scalars("val/loss")
        assert [(point.step, point.value) for point in points] == [(1, 1), (2, 2), (3, 3), (4, 4)]
    else:
        rows = read_csv(run_dir / "metrics.csv")
        assert [(row["epoch"], row["val/loss"]) for row in rows] == [
            ("1", "1.0"),
            ("2", "2.0"),
            ("3", "3.0"),
            ("4", "4.0"),
        ]
