"""MLflow tracking with the real MLflow client: params, per-epoch metrics, image grids and the
summary of each run, in a local SQLite store by default (`mlflow ui --backend-store-uri
sqlite:///outputs/mlflow.db`) or on a tracking server."""

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from mtlrun.errors import TrackerError, UserError
from mtlrun.loggers.base import RECORD_FIELDS, Logger, flatten, sweep_folder
from mtlrun.parts import LOGGERS
from mtlrun.runfolder import output_root, read_json, write_json
from mtlrun.schemas.logger import MLflowConfig, local_store_path

BATCH = 100  # params per request: MLflow's limit for log_batch
# A server that refuses or does not answer ends the run in seconds, not after MLflow's default
# of 7 retries with growing pauses and 120 s each (minutes of retry logs); set them to wait longer.
HTTP_LIMITS = {
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
}
DATABASES = ("sqlite", "postgresql", "mysql", "mssql")  # stores with no artifact root of their own


def store_uri(config: MLflowConfig, root: Path) -> str:
    """The tracking URI, with a local store's path made absolute within the output tree `root`
    (mlflow.db there by default), so that training and `resume` from any folder find one
    store."""
    if config.tracking_uri is None:
        return f"sqlite:///{root / 'mlflow.db'}"
    path = local_store_path(config.tracking_uri)
    if path is None:
        return config.tracking_uri
    absolute = (root / path).resolve()
    return f"sqlite:///{absolute}" if config.tracking_uri.startswith("sqlite:") else str(absolute)


@LOGGERS.register("mlflow", schema=MLflowConfig)
class MLflowLogger(Logger):
    """`logger=mlflow`: one MLflow run per mtlrun run, its id and store kept in <run>/mlflow.json
    so that `mtlrun resume` continues the same MLflow run (a run resumed with another store
    starts a new MLflow run there). Params: the flattened resolved config. Metrics: every
    record's `<split>/<task>/<metric>` at step = epoch (a resumed run logs the epochs it repeats
    again, at the same steps). Artifacts: the image grids (images/) and summary.json, in
    <output tree>/mlartifacts for a database store. Tags: the run folder and, for a sweep's job,
    the sweep folder.

    A store that cannot be used (damaged, not an MLflow store, a server that refuses or does not
    answer) ends the run in one line, `TrackerError`, and the run is marked failed."""

    def __init__(self, config: MLflowConfig, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store's set-up notes
        logging.getLogger("alembic").setLevel(logging.WARNING)
        for name, value in HTTP_LIMITS.items():
            os.environ.setdefault(name, value)
        self.config = config
        self.record_path = run_dir / "mlflow.json"
        root = output_root(run_dir)
        self.tracking_uri = store_uri(config, root)
        scheme = self.tracking_uri.split(":", 1)[0].split("+")[0]
        self.artifacts = (root / "mlartifacts").as_uri() if scheme in DATABASES else None
        self.client: Any = None
        self.run_id: str | None = None
        self.finished = False

    @contextmanager
    def tracking(self) -> Iterator[None]:
        """Whatever MLflow or its store raise (a database error, a server's HTTP error, a YAML
        file of a damaged file store) becomes one line naming the store."""
        try:
            yield
        except UserError:  # already one line (a damaged mlflow.json, a folder for a store)
            raise
        except Exception as error:
            self.client = None  # nothing more is sent: close() does not wait on it again
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            # A server's error: "API request to URL failed ... (Caused by ReadTimeoutError(...))"
            head, caused, cause = reason.partition("(Caused by ")
            reason = cause.removesuffix(")") if caused else head
            where = "server" if local_store_path(self.tracking_uri) is None else "store"
            fix = (
                "check that the server runs and is reachable"
                if where == "server"
                else "it is damaged or not an MLflow store: move it aside (a new one is made) "
                "or name another with logger.mlflow.tracking_uri=..."
            )
            raise TrackerError(
                f"logger.mlflow: the MLflow {where} {self.tracking_uri} failed "
                f"({type(error).__name__}: {reason[:200]}); {fix}"
            ) from None

    def connect(self) -> None:
        from mlflow.tracking import MlflowClient

        sqlite_file = self.tracking_uri.removeprefix("sqlite:///")
        if sqlite_file == self.tracking_uri:
            sqlite_file = None
        # MLflow retries a database it cannot open for about 100 s: a folder in the file's place,
        # or a missing folder around it, are told or made at once.
        if sqlite_file is not None and Path(sqlite_file).is_dir():
            raise TrackerError(
                f"logger.mlflow: the MLflow store {sqlite_file} is a folder, not a SQLite file; "
                "move it aside, or name another with logger.mlflow.tracking_uri=..."
            )
        if sqlite_file is not None:
            Path(sqlite_file).parent.mkdir(parents=True, exist_ok=True)
        # A database store makes its default artifact root, ./mlruns, in the working folder,
        # though every experiment mtlrun makes names its own (`self.artifacts`): it goes again.
        stray = Path("mlruns")
        made_here = self.artifacts is not None and not stray.exists()
        # The first client creates the store's tables; a sweep's jobs start together, and two
        # migrating one SQLite file at once fail: one at a time.
        from filelock import FileLock

        with FileLock(sqlite_file + ".lock") if sqlite_file else nullcontext():
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
        if made_here:
            with suppress(OSError):  # not empty: something else uses it
                stray.rmdir()

    def start(self, config: dict[str, Any]) -> None:
        with self.tracking():
            self.connect()
            record = read_json(self.record_path) if self.record_path.is_file() else {}
            if record.get("tracking_uri") == self.tracking_uri:  # resumed: the run goes on
                self.run_id = record["run_id"]
                self.client.update_run(self.run_id, status="RUNNING")
                return
            self.create_run(config)

    def create_run(self, config: dict[str, Any]) -> None:
        from mlflow.entities import Param

        sweep = sweep_folder(self.run_dir)
        experiment = self.config.experiment or str(config.get("name", "mtlrun"))
        if sweep is not None and self.config.experiment is None:
            experiment = f"{experiment} · {sweep.parent.name}/{sweep.name}"
        tags = {"mtlrun.run_dir": str(self.run_dir.resolve())}
        if sweep is not None:
            tags["mtlrun.sweep"] = str(sweep)
        run = self.client.create_run(
            self.experiment_id(experiment), run_name=self.run_dir.name, tags=tags
        )
        self.run_id = run.info.run_id
        write_json(self.record_path, {"tracking_uri": self.tracking_uri, "run_id": self.run_id})
        params = [Param(key, str(value)) for key, value in flatten(config).items()]
        for start in range(0, len(params), BATCH):
            self.client.log_batch(self.run_id, params=params[start : start + BATCH])

    def experiment_id(self, name: str) -> str:
        """The experiment called `name`, made if need be (by this job or, at the same moment,
        another job of the sweep)."""
        from mlflow.exceptions import MlflowException

        for _ in range(2):
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                return found.experiment_id
            try:
                return self.client.create_experiment(name, artifact_location=self.artifacts)
            except MlflowException:
                continue  # another job made it first
        raise RuntimeError(f"cannot create the MLflow experiment {name!r}")

    def log_metrics(self, record: dict[str, Any]) -> None:
        from mlflow.entities import Metric

        assert self.run_id is not None, "start() comes first"
        stamp = int(time.time() * 1000)
        metrics = [
            Metric(key, float(value), stamp, int(record["epoch"]))
            for key, value in record.items()
            if key not in RECORD_FIELDS
        ]
        with self.tracking():
            self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        assert self.run_id is not None, "start() comes first"
        with self.tracking():
            self.client.log_artifact(self.run_id, str(path), artifact_path="images")

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        assert self.run_id is not None, "start() comes first"
        summary_path = self.run_dir / "summary.json"
        with self.tracking():
            if summary_path.is_file():
                self.client.log_artifact(self.run_id, str(summary_path))
            self.client.set_terminated(self.run_id, "FINISHED")
        self.finished = True

    def close(self) -> None:
        # Stopped before the end (Ctrl-C, a failure): `mtlrun resume` may still finish it.
        # A store that fails now does not turn the stop into a failure: the MLflow run stays
        # RUNNING, and the run folder says how the run ended.
        if self.client is not None and self.run_id is not None and not self.finished:
            with suppress(Exception):
                self.client.set_terminated(self.run_id, "KILLED")
