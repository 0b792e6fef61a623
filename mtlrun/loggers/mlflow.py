"""MLflow tracking with the real MLflow client: params, per-epoch metrics, image grids and the
summary of each run, in a local SQLite store by default (`mlflow ui --backend-store-uri
sqlite:///outputs/mlflow.db`) or on a tracking server."""

import json
import logging
import time
from pathlib import Path
from typing import Any

from mtlrun.loggers.base import RECORD_FIELDS, Logger, flatten, sweep_folder
from mtlrun.parts import LOGGERS
from mtlrun.runfolder import write_json
from mtlrun.schemas.logger import MLflowConfig

BATCH = 100  # params per request: MLflow's limit for log_batch


def local_store() -> tuple[str, str]:
    """The tracking URI and artifact location of the default local store."""
    outputs = Path("outputs").resolve()
    outputs.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{outputs / 'mlflow.db'}", (outputs / "mlartifacts").as_uri()


@LOGGERS.register("mlflow", schema=MLflowConfig)
class MLflowLogger(Logger):
    """`logger=mlflow`: one MLflow run per mtlrun run, its id kept in <run>/mlflow.json so that
    `mtlrun resume` continues the same MLflow run. Params: the flattened resolved config.
    Metrics: every record's `<split>/<task>/<metric>` at step = epoch (a resumed run logs the
    epochs it repeats again, at the same steps). Artifacts: the image grids (images/) and
    summary.json. Tags: the run folder and, for a sweep's job, the sweep folder."""

    def __init__(self, config: MLflowConfig, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its store's set-up notes
        logging.getLogger("alembic").setLevel(logging.WARNING)
        self.config = config
        self.record_path = run_dir / "mlflow.json"
        if config.tracking_uri:
            self.tracking_uri, self.artifacts = config.tracking_uri, None
        else:
            self.tracking_uri, self.artifacts = local_store()
        if self.tracking_uri.startswith("sqlite:///"):
            # The first client creates the store's tables; a sweep's jobs start together, and
            # two migrating one SQLite file at once fail: one at a time.
            from filelock import FileLock

            with FileLock(self.tracking_uri.removeprefix("sqlite:///") + ".lock"):
                self.client = MlflowClient(tracking_uri=self.tracking_uri)
        else:
            self.client = MlflowClient(tracking_uri=self.tracking_uri)
        self.run_id: str | None = None
        self.finished = False

    def start(self, config: dict[str, Any]) -> None:
        if self.record_path.is_file():  # a resumed run: the same MLflow run goes on
            self.run_id = json.loads(self.record_path.read_text())["run_id"]
            self.client.update_run(self.run_id, status="RUNNING")
            return
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
        from mlflow.entities import Param

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
        self.client.log_batch(self.run_id, metrics=metrics)

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        assert self.run_id is not None, "start() comes first"
        self.client.log_artifact(self.run_id, str(path), artifact_path="images")

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        assert self.run_id is not None, "start() comes first"
        summary_path = self.run_dir / "summary.json"
        if summary_path.is_file():
            self.client.log_artifact(self.run_id, str(summary_path))
        self.client.set_terminated(self.run_id, "FINISHED")
        self.finished = True

    def close(self) -> None:
        # Stopped before the end (Ctrl-C, a failure): `mtlrun resume` may still finish it.
        if self.run_id is not None and not self.finished:
            self.client.set_terminated(self.run_id, "KILLED")
