"""A run writes the run folder README.md describes, with the right keys, and survives bad turns."""

import json

import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

from mtlrun.checkpoint import load_checkpoint
from mtlrun.errors import TrainingDiverged, UserError
from mtlrun.experiment import build
from mtlrun.lifecycle import train
from tests.conftest import TINY, compose_config


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def final_model_accuracy(cfg, run_dir) -> float:
    """The class accuracy of last.pt (the final model) on the test split, counted here."""
    experiment = build(cfg)
    model = experiment.model
    model.load_state_dict(load_checkpoint(run_dir / "checkpoints" / "last.pt")["model"])
    model.eval()
    test = experiment.data.test
    with torch.no_grad():
        predicted = model(test.inputs).predictions["class"].argmax(1)
    return (predicted == test.targets["class"]).float().mean().item()


def test_run_folder_has_every_file_and_key(run_dir):
    cfg = compose_config(
        [*TINY, "+task@tasks.class=classification", "+task@tasks.generation=generation"]
    )
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
    assert metrics["test/class/acc"] == pytest.approx(final_model_accuracy(cfg, run_dir))
    assert metrics["test/reconstruction/nll_iw"] < metrics["test/reconstruction/nelbo"] + 1
    # The best epoch is the first with the lowest validation loss.
    best = min((r for r in records if r["split"] == "val"), key=lambda r: r["val/loss"])
    assert (saved["best_epoch"], saved["best_val_loss"]) == (best["epoch"], best["val/loss"])

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
    cfg = compose_config([*TINY, "+task@tasks.class=classification", "trainer.deterministic=true"])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = train(cfg, tmp_path / "a")["metrics"]
    b = train(cfg, tmp_path / "b")["metrics"]
    assert a == b


@pytest.mark.slow  # a long training, to show that it learns
def test_loss_goes_down_on_the_validation_split(run_dir):
    cfg = compose_config(
        [
            *TINY,
            "+task@tasks.class=classification",
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
        [
            *TINY,
            "~task@tasks.reconstruction",
            "+task@tasks.class=classification",
            "backbone=dense_ae",
            "optim=sgd",
            "optim.lr=1e30",
        ]
    )
    with pytest.raises(TrainingDiverged, match="lower optim.lr"):
        train(cfg, run_dir)
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and "optim.lr" in meta["error"]


def strict_json(text: str):
    """Parse JSON as a strict parser would: NaN and Infinity are not JSON."""

    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=refuse)


def nan_in(split: str, key: str):
    """An `evaluate` that reports NaN for `key` of the `split` split."""
    from mtlrun import loop as train_module

    real = train_module.evaluate

    def evaluate(experiment, data, name, final=False, after_batch=None):
        metrics = real(experiment, data, name, final, after_batch)
        if name == split:
            metrics[key] = float("nan")
        return metrics

    return evaluate


NAN_CASES = {
    "val": (
        "val/class/nll",
        "val/class/nll is nan after epoch 1; lower optim.lr, set trainer.grad_clip (e.g. 1.0) "
        "or use trainer.precision=fp32",
    ),
    "test": (
        "test/loss",
        "test/loss is nan at the end of training; lower optim.lr, set trainer.grad_clip "
        "(e.g. 1.0) or use trainer.precision=fp32",
    ),
}


@pytest.mark.parametrize("split", NAN_CASES)
def test_a_nan_metric_fails_the_run_in_one_line_and_reaches_no_file(run_dir, monkeypatch, split):
    key, line = NAN_CASES[split]
    monkeypatch.setattr("mtlrun.loop.evaluate", nan_in(split, key))
    cfg = compose_config(
        [
            *TINY,
            "~task@tasks.reconstruction",
            "+task@tasks.class=classification",
            "backbone=dense_ae",
            "trainer.epochs=1",
        ]
    )
    with pytest.raises(TrainingDiverged) as error:
        train(cfg, run_dir)
    assert str(error.value) == line
    meta = strict_json((run_dir / "meta.json").read_text())
    assert meta["status"] == "failed" and meta["error"] == line
    assert not (run_dir / "summary.json").exists()
    records = [strict_json(r) for r in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["split"] for r in records] == ["train"] if split == "val" else ["train", "val"]
    # A NaN validation never selects best.pt; a NaN test leaves the good checkpoints alone.
    assert (run_dir / "checkpoints" / "best.pt").exists() == (split == "test")


def test_non_finite_weights_after_the_last_step_fail_the_run_and_keep_best_pt(run_dir, monkeypatch):
    from mtlrun import loop as train_module

    real = train_module.train_epoch

    def train_epoch(experiment, data_order, progress, bar, stop):
        metrics = real(experiment, data_order, progress, bar, stop)
        if progress.epoch == 2:  # the second epoch's last step made a weight infinite
            next(experiment.model.parameters()).data[0] = float("inf")
        return metrics

    monkeypatch.setattr(train_module, "train_epoch", train_epoch)
    cfg = compose_config(
        [
            *TINY,
            "~task@tasks.reconstruction",
            "+task@tasks.class=classification",
            "backbone=dense_ae",
        ]
    )
    with pytest.raises(TrainingDiverged) as error:
        train(cfg, run_dir)
    name = next(build(cfg).model.named_parameters())[0]
    assert str(error.value) == (
        f"the weights became NaN or infinite ({name}) in epoch 2; lower optim.lr, set "
        "trainer.grad_clip (e.g. 1.0) or use trainer.precision=fp32"
    )
    for checkpoint in ("best.pt", "last.pt"):  # epoch 1's, finite
        state = load_checkpoint(run_dir / "checkpoints" / checkpoint)
        assert state["progress"]["epoch"] == 2
        assert all(t.isfinite().all() for t in state["model"].values())
    assert not (run_dir / "summary.json").exists()


def test_a_diverging_config_fails_through_the_cli_in_one_line(tmp_path):
    from tests.helpers import run_cli

    for lr in ("1e30", "1e6"):
        args = [
            *TINY,
            "~task@tasks.reconstruction",
            "+task@tasks.class=classification",
            "backbone=dense_ae",
            f"optim.lr={lr}",
        ]
        if lr == "1e30":
            args.append("optim=sgd")
        result = run_cli(tmp_path, "train", *args)
        assert result.returncode == 2, result.stderr
        line = result.stderr.strip()
        assert line.startswith("mtlrun: error: the training loss became ")
        assert line.endswith(
            " in epoch 1; lower optim.lr, set trainer.grad_clip (e.g. 1.0) or use "
            "trainer.precision=fp32"
        )
        assert "\n" not in line
    for run in (tmp_path / "outputs" / "runs").glob("*/*"):
        assert strict_json((run / "meta.json").read_text())["status"] == "failed"
        assert not (run / "summary.json").exists()
        assert not (run / "checkpoints" / "best.pt").exists()


def test_eval_of_a_checkpoint_with_nan_metrics_fails_in_one_line_and_writes_nothing(
    run_dir, monkeypatch
):
    import sys

    from mtlrun.commands import eval as eval_command

    train(
        compose_config(
            [
                *TINY,
                "~task@tasks.reconstruction",
                "+task@tasks.class=classification",
                "backbone=dense_ae",
                "trainer.epochs=1",
            ]
        ),
        run_dir,
    )
    monkeypatch.setattr(eval_command, "evaluate", nan_in("test", "test/class/acc"))
    monkeypatch.setattr(sys, "argv", ["mtlrun eval", str(run_dir), "checkpoint=last"])
    with pytest.raises(TrainingDiverged) as error:
        eval_command.main()
    assert str(error.value) == (
        "test/class/acc is nan with last.pt; lower optim.lr, set trainer.grad_clip (e.g. 1.0) "
        "or use trainer.precision=fp32"
    )
    assert not (run_dir / "eval").exists()


def test_json_files_are_strict_and_a_nan_never_replaces_one(tmp_path):
    from mtlrun.runfolder import write_json

    path = tmp_path / "summary.json"
    write_json(path, {"metrics": {"test/loss": 1.5}})
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
            write_json(path, {"metrics": {"test/loss": bad}})
    assert strict_json(path.read_text()) == {"metrics": {"test/loss": 1.5}}
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no temporary file left


def test_corrupt_checkpoint_is_a_user_error(tmp_path):
    path = tmp_path / "last.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="corrupt or unreadable"):
        load_checkpoint(path)


def test_bf16_autocast_trains(run_dir):
    cfg = compose_config(
        [
            *TINY,
            "~task@tasks.reconstruction",
            "+task@tasks.class=classification",
            "backbone=cnn",
            "trainer.precision=bf16",
        ]
    )
    summary = train(cfg, run_dir)
    assert summary["metrics"]["test/class/acc"] > 0.3


def test_schedules_change_the_learning_rate():
    from mtlrun.experiment import build

    for schedule in ["cosine", "step", "onecycle"]:
        cfg = compose_config(
            [
                *TINY,
                "~task@tasks.reconstruction",
                "+task@tasks.class=classification",
                f"optim.schedule={schedule}",
                "optim.step_epochs=1",
            ]
        )
        experiment = build(cfg)
        first = experiment.optimizer.param_groups[0]["lr"]
        for _ in range(7):
            experiment.optimizer.step()
            experiment.scheduler.step()
        assert experiment.optimizer.param_groups[0]["lr"] != first, schedule
