"""Loggers, registered by name: jsonl always, others chosen with `logger=[...]`."""

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from mtlrun.loggers.base import Logger, LoggerConfig
from mtlrun.parts import LOGGERS

__all__ = ["LOGGERS", "Logger", "LoggerConfig", "Loggers"]


class Loggers(Logger):
    """All configured loggers behind one Logger: metrics.jsonl always, plus `logger.*`."""

    def __init__(self, run_dir: Path, node: DictConfig | None) -> None:
        super().__init__(LoggerConfig(), run_dir)
        node = node or DictConfig({})
        names = ["jsonl", *(str(name) for name in node if name != "jsonl")]
        self.loggers = [
            LOGGERS.build(name, node.get(name), f"logger.{name}", run_dir) for name in names
        ]

    def start(self, config: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.start(config)

    def log_metrics(self, record: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.log_metrics(record)

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        for logger in self.loggers:
            logger.log_image(tag, path, epoch)

    def resume(self, epoch: int) -> None:
        for logger in self.loggers:
            logger.resume(epoch)

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        for logger in self.loggers:
            logger.finish(config, summary)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()
