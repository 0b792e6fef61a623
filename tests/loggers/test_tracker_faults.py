"""Trackers with real faults: a foreign run folder's MLflow/W&B destinations (a server on a real
socket of 127.0.0.1, a path outside the output tree) are neither contacted nor written without
consent; a damaged store, a server that refuses or never answers, an unknown scheme and W&B
online without a key each end in one line, the run folder marked with the reason."""

import json
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf

from tests.conftest import TINY
from tests.helpers import run_cli

ARGS = [*TINY, "trainer.epochs=1", "backbone.hidden_dims=[16]", "tasks.reconstruction.iw_samples=0"]


def last_line(text: str) -> Path:
    return Path(text.strip().splitlines()[-1])


def meta(run_dir: Path) -> dict:
    return json.loads((run_dir / "meta.json").read_text())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("finished")
    return last_line(run_cli(cwd, "train", *ARGS, check=True).stdout)


@pytest.fixture
def listening() -> Iterator[socket.socket]:
    """A server on 127.0.0.1 that takes connections into its backlog and never answers."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield server


def contacted(server: socket.socket) -> bool:
    server.settimeout(0.2)
    try:
        connection, _ = server.accept()
    except TimeoutError:
        return False
    connection.close()
    return True


def foreign_run(finished_run: Path, tree: Path, logger: dict) -> Path:
    """A copy of a finished run in `tree`/outputs/runs, made to look interrupted at its end and
    its config naming `logger`, as a run folder from someone else would."""
    run_dir = tree / "outputs" / "runs" / "2026-01-02" / finished_run.name
    shutil.copytree(finished_run, run_dir)
    config = OmegaConf.load(run_dir / "config.resolved.yaml")
    config.logger = logger
    (run_dir / "config.resolved.yaml").write_text(OmegaConf.to_yaml(config))
    record = meta(run_dir) | {"status": "interrupted"}
    (run_dir / "meta.json").write_text(json.dumps(record))
    (run_dir / "summary.json").unlink()
    return run_dir


def test_resume_contacts_no_saved_server_and_writes_no_saved_path_outside_the_tree(
    finished_run, tmp_path, listening, monkeypatch
):
    port = listening.getsockname()[1]
    monkeypatch.setenv("WANDB_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("WANDB_API_KEY", "a" * 40)
    outside = tmp_path / "outside" / "theirs.db"
    run_dir = foreign_run(
        finished_run,
        tmp_path / "tree",
        {
            "mlflow": {"tracking_uri": f"http://127.0.0.1:{port}", "experiment": None},
            "wandb": {"project": "theirs", "entity": None, "mode": "online", "group": None},
        },
    )
    resumed = run_cli(tmp_path, "resume", str(run_dir), check=True)
    assert (
        f"mtlrun: warning: logger.mlflow left out: http://127.0.0.1:{port} was not contacted: a "
        "saved run's network destination is used only when you allow it; pass --trackers to "
        "use it\n"
    ) in resumed.stderr
    assert (
        "mtlrun: warning: logger.wandb left out: W&B online (project theirs) was not contacted"
    ) in resumed.stderr
    assert not contacted(listening)
    assert meta(run_dir)["status"] == "completed"
    assert not (run_dir / "wandb").exists() and not (run_dir / "mlflow.json").exists()

    run_dir = foreign_run(
        finished_run, tmp_path / "tree2", {"mlflow": {"tracking_uri": f"sqlite:///{outside}"}}
    )
    resumed = run_cli(tmp_path, "resume", str(run_dir), check=True)
    assert (
        f"mtlrun: warning: logger.mlflow left out: sqlite:///{outside} is outside the output "
        f"tree {tmp_path / 'tree2' / 'outputs'} and was not written; pass --trackers to use it"
    ) in resumed.stderr
    assert not outside.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tree", "tree2"]


def test_trackers_flag_or_naming_the_destination_again_allows_it(finished_run, tmp_path):
    outside = tmp_path / "outside" / "theirs.db"
    logger = {"mlflow": {"tracking_uri": f"sqlite:///{outside}"}}
    run_dir = foreign_run(finished_run, tmp_path / "tree", logger)
    resumed = run_cli(tmp_path, "resume", str(run_dir), "--trackers", check=True)
    assert "left out" not in resumed.stderr
    (run,) = MlflowClient(f"sqlite:///{outside}").search_runs(["1"])
    assert run.info.status == "FINISHED" and run.data.tags["mtlrun.run_dir"] == str(run_dir)

    other = tmp_path / "other.db"
    named = run_cli(
        tmp_path, "reproduce", str(finished_run), f"logger.mlflow.tracking_uri=sqlite:///{other}"
    )
    assert named.returncode == 0, named.stderr
    assert "left out" not in named.stderr and other.is_file()
    assert not (tmp_path / "mlruns").exists()


def test_a_damaged_store_ends_the_run_in_one_line_and_marks_it_failed(tmp_path):
    store = tmp_path / "outputs" / "mlflow.db"
    store.parent.mkdir()
    store.write_bytes(b"not a database " * 100)
    failed = run_cli(tmp_path, "train", *ARGS, "logger=mlflow")
    line = (
        f"mtlrun: error: logger.mlflow: the MLflow store sqlite:///{store} failed "
        "(DatabaseError: (sqlite3.DatabaseError) file is not a database); it is damaged or not "
        "an MLflow store: move it aside (a new one is made) or name another with "
        "logger.mlflow.tracking_uri=...\n"
    )
    assert (failed.returncode, failed.stderr) == (2, line)
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert (
        meta(run_dir)["status"] == "failed" and "file is not a database" in meta(run_dir)["error"]
    )
    assert store.read_bytes() == b"not a database " * 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs"]  # no ./mlruns

    store.unlink()
    store.mkdir()  # a folder where the SQLite file belongs: told at once, not after retries
    failed = run_cli(tmp_path, "train", *ARGS, "logger=mlflow")
    assert failed.stderr == (
        f"mtlrun: error: logger.mlflow: the MLflow store {store} is a folder, not a SQLite file; "
        "move it aside, or name another with logger.mlflow.tracking_uri=...\n"
    )


def test_a_damaged_file_store_ends_the_run_in_one_line(tmp_path):
    store = tmp_path / "outputs" / "lab_store"
    client = MlflowClient(str(store))
    client.create_experiment("default")
    (meta_yaml,) = [p for p in store.glob("*/meta.yaml") if p.parent.name != "0"]
    meta_yaml.write_text("{{{ not: yaml :\n")
    failed = run_cli(
        tmp_path, "train", *ARGS, "logger=mlflow", "logger.mlflow.tracking_uri=lab_store"
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith(
        f"mtlrun: error: logger.mlflow: the MLflow store {store} failed"
    )
    assert failed.stderr.count("\n") == 1


def test_a_server_that_refuses_is_one_line_within_seconds(tmp_path):
    with socket.socket() as probe:  # a port nothing listens on: the connection is refused
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    failed = run_cli(
        tmp_path,
        "train",
        *ARGS,
        "logger=mlflow",
        f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}",
    )
    assert time.monotonic() - started < 30
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
    assert "Connection refused" in failed.stderr
    assert failed.stderr.startswith(
        f"mtlrun: error: logger.mlflow: the MLflow server http://127.0.0.1:{port} failed"
    )
    assert failed.stderr.endswith("; check that the server runs and is reachable\n")


@pytest.mark.slow
def test_a_server_that_never_answers_is_one_line_within_seconds(tmp_path, listening):
    port = listening.getsockname()[1]
    started = time.monotonic()
    failed = run_cli(
        tmp_path,
        "train",
        *ARGS,
        "logger=mlflow",
        f"logger.mlflow.tracking_uri=http://127.0.0.1:{port}",
    )
    assert time.monotonic() - started < 40
    assert failed.returncode == 2 and failed.stderr.count("\n") == 1, failed.stderr
    assert "(MlflowException: ReadTimeoutError(" in failed.stderr
    assert "Read timed out. (read timeout=5)" in failed.stderr
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert meta(run_dir)["status"] == "failed"


def test_an_unknown_scheme_is_refused_before_any_folder(tmp_path):
    refused = run_cli(
        tmp_path, "train", *ARGS, "logger=mlflow", "logger.mlflow.tracking_uri=foo://x"
    )
    assert refused.stderr == (
        "mtlrun: error: logger.mlflow.tracking_uri='foo://x': MLflow knows no store of scheme "
        "'foo'; name a server (http://HOST:5000), a folder, sqlite:///FILE.db, or a database "
        "(postgresql://, mysql://, mssql://), or databricks\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_wandb_online_without_a_key_is_one_line_and_no_prompt(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    env = {"WANDB_MODE": "online", "HOME": str(tmp_path / "home"), "NETRC": str(tmp_path / "no")}
    failed = run_cli(tmp_path, "train", *ARGS, "logger=wandb", "logger.wandb.mode=online", env=env)
    assert failed.stderr == (
        "mtlrun: error: logger.wandb: mode online needs a W&B API key, and none is set; set "
        "$WANDB_API_KEY or run `wandb login`, or log offline with logger.wandb.mode=offline\n"
    )
    (run_dir,) = (tmp_path / "outputs" / "runs").glob("*/*")
    assert meta(run_dir)["status"] == "failed"
