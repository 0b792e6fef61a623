"""The loggers' schemas (`logger=[NAME,...]`, `logger.NAME.KEY=...`): defaults and checks. Imports
no torch: composing a config, `--cfg job` and every refusal need only these."""

from dataclasses import dataclass

from mtlrun.config import check_choice


@dataclass
class LoggerConfig:
    """A logger's options, under `logger.<name>`; a logger with options subclasses this (mlflow
    and wandb, below). jsonl, csv and tensorboard have none (`logger=[csv]` composes to
    `logger: {csv: {}}`); each logger's class docstring says what it writes."""


@dataclass
class MLflowConfig(LoggerConfig):
    """`logger=mlflow`: `tracking_uri` null is the SQLite store outputs/mlflow.db under the
    working directory (artifacts beside it, in outputs/mlartifacts); a server's URL sends the
    runs there. `experiment` null names the experiment after the run (`name`); the jobs of a
    sweep go to an experiment of their own, `<name> · <sweep folder>`."""

    tracking_uri: str | None = None
    experiment: str | None = None


@dataclass
class WandbConfig(LoggerConfig):
    """`logger=wandb`: `project` null keeps the run offline (and in the project `mtlrun`); a
    project with $WANDB_API_KEY set (or `wandb login`) logs online; `mode` offline or online
    forces either. `group` null groups a sweep's jobs by their sweep folder."""

    project: str | None = None
    entity: str | None = None
    mode: str | None = None
    group: str | None = None

    def check(self, key: str) -> None:

        if self.mode is not None:
            check_choice(f"{key}.mode", self.mode, ("offline", "online"))
