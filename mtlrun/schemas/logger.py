"""The loggers' schemas (`logger=[NAME,...]`, `logger.NAME.KEY=...`): defaults and checks. Imports
no torch: composing a config, `--cfg job` and every refusal need only these."""

import importlib.metadata
import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from mtlrun.config import check_choice
from mtlrun.errors import ConfigError


@dataclass(frozen=True)
class Destination:
    """Where a logger sends records besides its run folder. `option` is how the config names it
    (`KEY=VALUE` under `logger.<name>`), `address` how messages show it, and `path` the file or
    folder it writes on this machine (a relative one lies in the run's output tree), None for a
    destination on the network."""

    option: str
    address: str
    path: str | None


@dataclass
class LoggerConfig:
    """A logger's options, under `logger.<name>`; a logger with options subclasses this (mlflow
    and wandb, below). jsonl, csv and tensorboard have none (`logger=[csv]` composes to
    `logger: {csv: {}}`); each logger's class docstring says what it writes."""

    def destination(self) -> Destination | None:
        """Where this logger sends records outside the run folder (None: only there). A saved
        run's destination on the network or outside its output tree is used again only when
        the user allows it (`mtlrun.trackers`)."""
        return None


# The tracking URI schemes of MLflow's own stores; installed plug-ins add theirs as entry points.
MLFLOW_SCHEMES = ("file", "sqlite", "http", "https", "databricks", "postgresql", "mysql", "mssql")


def local_store_path(uri: str) -> str | None:
    """The file or folder an MLflow tracking URI names on this machine (a folder path, file:PATH
    or sqlite:///PATH; relative or absolute, as written), None for a store on the network."""
    scheme = urlsplit(uri).scheme
    if scheme == "":
        return uri
    if scheme == "file":
        return urlsplit(uri).path
    if scheme == "sqlite" and uri.startswith("sqlite:///"):
        return uri.removeprefix("sqlite:///")
    return None


@dataclass
class MLflowConfig(LoggerConfig):
    """`logger=mlflow`: `tracking_uri` null is the SQLite store mlflow.db in the run's output
    tree (outputs/mlflow.db; artifacts beside it, in outputs/mlartifacts); a relative path
    (`mlruns`, `sqlite:///lab.db`) lies in that tree too, wherever mtlrun is run from; a server's
    URL sends the runs there. `experiment` null names the experiment after the run (`name`);
    the jobs of a sweep go to an experiment of their own, `<name> · <sweep folder>`."""

    tracking_uri: str | None = None
    experiment: str | None = None

    def check(self, key: str) -> None:
        if self.tracking_uri is None:
            return
        scheme = urlsplit(self.tracking_uri).scheme.split("+")[0]  # postgresql+psycopg2://
        if scheme in ("", *MLFLOW_SCHEMES):
            return
        installed = importlib.metadata.entry_points(group="mlflow.tracking_store")
        if scheme not in {point.name for point in installed}:
            raise ConfigError(
                f"{key}.tracking_uri={self.tracking_uri!r}: MLflow knows no store of scheme "
                f"{scheme!r}; name a server (http://HOST:5000), a folder, sqlite:///FILE.db, "
                "or a database (postgresql://, mysql://, mssql://), or databricks"
            )

    def destination(self) -> Destination | None:
        if self.tracking_uri is None:  # the default store, in the output tree
            return None
        uri = self.tracking_uri
        return Destination(f"tracking_uri={uri}", uri, local_store_path(uri))


@dataclass
class WandbConfig(LoggerConfig):
    """`logger=wandb`: `project` null keeps the run offline (and in the project `mtlrun`); a
    project with $WANDB_API_KEY set logs online; `mode` offline or online forces either (online
    needs a key: $WANDB_API_KEY or `wandb login`). `group` null groups a sweep's jobs by their
    sweep folder."""

    project: str | None = None
    entity: str | None = None
    mode: str | None = None
    group: str | None = None

    def check(self, key: str) -> None:
        if self.mode is not None:
            check_choice(f"{key}.mode", self.mode, ("offline", "online"))

    def resolved_mode(self) -> str:
        if self.mode is not None:
            return self.mode
        return "online" if self.project and os.environ.get("WANDB_API_KEY") else "offline"

    def destination(self) -> Destination | None:
        if self.resolved_mode() == "offline":  # the run's files stay in <run>/wandb
            return None
        project = "/".join(part for part in (self.entity, self.project or "mtlrun") if part)
        return Destination("mode=online", f"W&B online (project {project})", None)
