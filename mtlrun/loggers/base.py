"""The logger interface: every evaluation's record goes to each configured logger."""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlrun.registry import Registry


@dataclass
class LoggerConfig:
    """A logger's options, under `logger.<name>`; a logger with options subclasses this. The
    loggers mtlrun ships have none (`logger=[csv]` composes to `logger: {csv: {}}`); each
    logger's class docstring says what it writes."""


class Logger:
    """Receives metric records (epoch, step, split, seconds and `<split>/<task>/<metric>`
    keys), image grids as they are written, and the final summary."""

    def __init__(self, config: LoggerConfig, run_dir: Path) -> None:
        self.run_dir = run_dir

    def log_metrics(self, record: dict[str, Any]) -> None:
        pass

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        pass

    def resume(self, epoch: int) -> None:
        """Forget what was logged from `epoch` on: a resumed run logs it again."""

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass


LOGGERS: Registry[type[Logger]] = Registry("logger", group="logger", keyed=True)
