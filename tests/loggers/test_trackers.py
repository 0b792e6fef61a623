"""logger=mlflow and logger=wandb with the real libraries, read back through MLflow's own
client and W&B's offline run files: params (the resolved config), per-epoch metrics, image
grids, the summary; a sweep's jobs grouped; a resumed run continues the same tracked run."""

import json
import os
import signal
import struct
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

import mtlrun.loop
from mtlrun.lifecycle import train
from tests.conftest import TINY, compose_config
from tests.helpers import run_mtlrun

SMALL = [
    *TINY,
    "backbone.hidden_dims=[32]",
    "tasks.reconstruction.iw_samples=0",
    "+task@tasks.class=classification",
]


def records(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def mlflow_client(tree: Path) -> MlflowClient:
    """The default store of the runs of the output tree `tree` (mtlrun.runfolder.output_root)."""
    return MlflowClient(tracking_uri=f"sqlite:///{tree / 'mlflow.db'}")


def interrupted_in_the_final_evaluation(monkeypatch) -> None:
    """Ctrl-C arrives during the final test evaluation of the next `train`."""
    evaluate = mtlrun.loop.evaluate

    def with_ctrl_c(experiment, split, name, final=False, after_batch=None):
        if final:
            os.kill(os.getpid(), signal.SIGINT)
        return evaluate(experiment, split, name, final, after_batch)

    monkeypatch.setattr(mtlrun.loop, "evaluate", with_ctrl_c)


def test_mlflow_records_params_metrics_images_and_summary_and_resume_continues(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run_dir = tmp_path / "run"
    cfg = compose_config([*SMALL, "logger=mlflow", "name=tracked"])
    interrupted_in_the_final_evaluation(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        train(cfg, run_dir)
    first_id = json.loads((run_dir / "mlflow.json").read_text())["run_id"]
    client = mlflow_client(run_dir)  # a run folder outside runs/ is its own output tree
    assert client.get_run(first_id).info.status == "KILLED"

    monkeypatch.undo()
    elsewhere = tmp_path / "elsewhere"  # resumed from another working folder: the same store
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    summary = train(cfg, run_dir, resume=True)
    assert sorted(p.name for p in elsewhere.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["elsewhere", "run"]  # no ./mlruns
    assert json.loads((run_dir / "mlflow.json").read_text())["run_id"] == first_id

    (experiment,) = [e for e in client.search_experiments() if e.name == "tracked"]
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_id == first_id and run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == str(cfg.optim.lr)
    assert run.data.params["tasks.class.type"] == "classification"
    assert run.data.tags["mtlrun.run_dir"] == str(run_dir)
    val = [r for r in records(run_dir) if r["split"] == "val"]
    history = client.get_metric_history(first_id, "val/class/acc")
    assert [(m.step, m.value) for m in history] == [(r["epoch"], r["val/class/acc"]) for r in val]
    assert run.data.metrics["test/class/acc"] == summary["metrics"]["test/class/acc"]
    images = {Path(f.path).name for f in client.list_artifacts(first_id, "images")}
    assert {"recon_e001.png", "recon_e002.png", "interpolation.png"} <= images
    assert "summary.json" in {f.path for f in client.list_artifacts(first_id)}


@pytest.mark.slow
def test_a_joblib_sweep_puts_its_jobs_in_one_mlflow_experiment(tmp_path):
    result = run_mtlrun(
        tmp_path,
        "train",
        "-m",
        *SMALL,
        "trainer.epochs=1",
        "logger=mlflow",
        "hydra/launcher=joblib",
        "hydra.sweep.dir=sweep",
        "seed=0,1",
        check=True,
    )
    assert "Traceback" not in result.stderr
    client = mlflow_client(tmp_path / "sweep")  # a sweep outside multirun/: its own tree
    (experiment,) = [e for e in client.search_experiments() if e.name.startswith("default · ")]
    assert experiment.name == f"default · {tmp_path.name}/sweep"
    runs = client.search_runs([experiment.experiment_id])
    assert sorted(run.data.params["seed"] for run in runs) == ["0", "1"]
    assert {run.data.tags["mtlrun.sweep"] for run in runs} == {str(tmp_path / "sweep")}
    assert all(run.info.status == "FINISHED" for run in runs)


@pytest.mark.slow
def test_mlflow_ui_serves_the_local_store(tmp_path, monkeypatch):
    """The README's `mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db`, asked over
    HTTP with MLflow's client, finds the run."""
    import socket
    import subprocess
    import sys
    import time

    monkeypatch.chdir(tmp_path)
    train(
        compose_config([*SMALL, "trainer.epochs=1", "logger=mlflow", "name=served"]),
        tmp_path / "outputs" / "runs" / "2026-01-02" / "10-00-00-000000_served",
    )
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    mlflow = Path(sys.executable).parent / "mlflow"
    server = subprocess.Popen(
        [
            str(mlflow),
            "ui",
            "--backend-store-uri",
            "sqlite:///outputs/mlflow.db",
            "--port",
            str(port),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its gunicorn workers too, so that they stop with it below
    )
    try:
        client = MlflowClient(tracking_uri=f"http://127.0.0.1:{port}")
        deadline = time.time() + 120
        while True:
            try:
                experiment = client.get_experiment_by_name("served")
                break
            except Exception:
                if time.time() > deadline:
                    raise
                time.sleep(0.5)
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED"
        assert "test/class/acc" in run.data.metrics
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def wandb_records(run_dir: Path) -> list:
    """The records of W&B's offline transaction log (<run>/wandb/offline-run-*/run-*.wandb):
    LevelDB's log format (32 KiB blocks of chunks with 7-byte headers: checksum, length, type
    full/first/middle/last) after a 7-byte W&B header, each record a protobuf `Record`."""
    from wandb.proto.wandb_internal_pb2 import Record

    (path,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    block, offset, pending, found = 32768, 7, b"", []
    while offset + 7 <= len(data):
        if block - offset % block < 7:  # a block's tail too short for a header: padding
            offset += block - offset % block
            continue
        length, kind = struct.unpack("<HB", data[offset + 4 : offset + 7])
        chunk = data[offset + 7 : offset + 7 + length]
        offset += 7 + length
        if kind == 0:  # zero padding at the end of the file
            break
        pending = chunk if kind in (1, 2) else pending + chunk
        if kind in (1, 4):
            record = Record()
            record.ParseFromString(pending)
            found.append(record)
    return found


def key(item) -> str:
    """A history or summary item's key: W&B keeps a key with `/` as its nested form."""
    return item.key or "/".join(item.nested_key)


def test_wandb_writes_an_offline_run_with_config_history_images_and_summary(tmp_path):
    run_dir = tmp_path / "run"
    summary = train(compose_config([*SMALL, "logger=wandb"]), run_dir)
    assert json.loads((run_dir / "wandb.json").read_text())["mode"] == "offline"
    logged = wandb_records(run_dir)
    (run,) = [r.run for r in logged if r.WhichOneof("record_type") == "run"]
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["optim"]["lr"] == 1e-3
    assert config["tasks"]["class"]["type"] == "classification"
    history = [
        {key(item): json.loads(item.value_json) for item in r.history.item}
        for r in logged
        if r.WhichOneof("record_type") == "history"
    ]
    val = [r for r in records(run_dir) if r["split"] == "val"]
    logged_val = [(h["epoch"], h["val/class/acc"]) for h in history if "val/class/acc" in h]
    assert logged_val == [(r["epoch"], r["val/class/acc"]) for r in val]
    images = [h for h in history if "images/reconstructions/_type" in h]
    assert [(h["epoch"], h["images/reconstructions/_type"]) for h in images] == [
        (1, "image-file"),
        (2, "image-file"),
    ]
    final = {
        key(item): json.loads(item.value_json)
        for r in logged
        if r.WhichOneof("record_type") == "summary"
        for item in r.summary.update
    }
    assert final["test/class/acc"] == pytest.approx(summary["metrics"]["test/class/acc"])
