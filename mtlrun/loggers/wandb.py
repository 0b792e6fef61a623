"""Weights & Biases with the real wandb library: offline by default (the run's files under
<run>/wandb, uploaded later with `wandb sync`), online once a key and a project are set."""

import json
from pathlib import Path
from typing import Any

from mtlrun.errors import TrackerError
from mtlrun.loggers.base import RECORD_FIELDS, Logger, sweep_folder
from mtlrun.parts import LOGGERS
from mtlrun.runfolder import write_json
from mtlrun.schemas.logger import WandbConfig


@LOGGERS.register("wandb", schema=WandbConfig)
class WandbLogger(Logger):
    """`logger=wandb`: one W&B run per mtlrun run, its id kept in <run>/wandb.json so that
    `mtlrun resume` continues it. Config: the resolved config. History: every record's
    `<split>/<task>/<metric>` with `epoch` (the x axis to choose), image grids as images.
    Summary: the final test metrics.

    Online, it never prompts: no key ($WANDB_API_KEY, `wandb login`) is one line, and so is a
    server that does not answer within `INIT_SECONDS`; the run is then marked failed."""

    INIT_SECONDS = 15  # wandb's default is 90

    def __init__(self, config: WandbConfig, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        self.config = config
        self.record_path = run_dir / "wandb.json"
        self.run: Any = None

    def start(self, config: dict[str, Any]) -> None:
        import wandb

        mode = self.config.resolved_mode()
        resumed = self.record_path.is_file()
        run_id = json.loads(self.record_path.read_text())["id"] if resumed else None
        sweep = sweep_folder(self.run_dir)
        if mode == "online":
            wandb.setup(settings=wandb.Settings(silent=True))  # login() then prints nothing
            if not wandb.login(prompt=False, verify=False):
                raise TrackerError(
                    "logger.wandb: mode online needs a W&B API key, and none is set; set "
                    "$WANDB_API_KEY or run `wandb login`, or log offline with "
                    "logger.wandb.mode=offline"
                )
        try:
            self.run = wandb.init(
                project=self.config.project or "mtlrun",
                entity=self.config.entity,
                group=self.config.group or (str(sweep) if sweep is not None else None),
                name=self.run_dir.name,
                dir=str(self.run_dir),
                mode=mode,
                id=run_id,
                resume="must" if resumed and mode == "online" else None,
                config=config,
                settings=wandb.Settings(
                    silent=True, console="off", save_code=False, init_timeout=self.INIT_SECONDS
                ),
            )
        except wandb.Error as error:
            reason = str(error).strip().splitlines()[0] if str(error).strip() else ""
            raise TrackerError(
                f"logger.wandb: W&B could not start the run ({type(error).__name__}: "
                f"{reason[:200]}); check the key and that the server is reachable, or log "
                "offline with logger.wandb.mode=offline"
            ) from None
        if not resumed:
            write_json(self.record_path, {"id": self.run.id, "mode": mode})

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
