"""Weights & Biases with the real wandb library: offline by default (the run's files under
<run>/wandb, uploaded later with `wandb sync`), online once a key and a project are set."""

import json
import os
from pathlib import Path
from typing import Any

from mtlrun.loggers.base import RECORD_FIELDS, Logger, sweep_folder
from mtlrun.parts import LOGGERS
from mtlrun.runfolder import write_json
from mtlrun.schemas.logger import WandbConfig


@LOGGERS.register("wandb", schema=WandbConfig)
class WandbLogger(Logger):
    """`logger=wandb`: one W&B run per mtlrun run, its id kept in <run>/wandb.json so that
    `mtlrun resume` continues it. Config: the resolved config. History: every record's
    `<split>/<task>/<metric>` with `epoch` (the x axis to choose), image grids as images.
    Summary: the final test metrics."""

    def __init__(self, config: WandbConfig, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        self.config = config
        self.record_path = run_dir / "wandb.json"
        self.run: Any = None

    def mode(self) -> str:
        if self.config.mode is not None:
            return self.config.mode
        return "online" if self.config.project and os.environ.get("WANDB_API_KEY") else "offline"

    def start(self, config: dict[str, Any]) -> None:
        import wandb

        resumed = self.record_path.is_file()
        run_id = json.loads(self.record_path.read_text())["id"] if resumed else None
        sweep = sweep_folder(self.run_dir)
        self.run = wandb.init(
            project=self.config.project or "mtlrun",
            entity=self.config.entity,
            group=self.config.group or (str(sweep) if sweep is not None else None),
            name=self.run_dir.name,
            dir=str(self.run_dir),
            mode=self.mode(),
            id=run_id,
            resume="must" if resumed and self.mode() == "online" else None,
            config=config,
            settings=wandb.Settings(silent=True, console="off", save_code=False),
        )
        if not resumed:
            write_json(self.record_path, {"id": self.run.id, "mode": self.mode()})

    def log_metrics(self, record: dict[str, Any]) -> None:
        metrics = {key: value for key, value in record.items() if key not in RECORD_FIELDS}
        self.run.log({**metrics, "epoch": record["epoch"]})

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        import wandb

        self.run.log({f"images/{tag}": wandb.Image(str(path)), "epoch": epoch})

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        self.run.summary.update(summary["metrics"])
        self.run.finish()
        self.run = None

    def close(self) -> None:
        if self.run is not None:  # stopped before the end: `mtlrun resume` continues it
            self.run.finish(exit_code=1)
            self.run = None
