"""metrics.jsonl: one JSON object per evaluation; always on."""

import json
from pathlib import Path
from typing import Any

from mtlrun.loggers.base import Logger, LoggerConfig, kept_on_resume
from mtlrun.parts import LOGGERS
from mtlrun.runfolder import RunFolder, write_atomic


@LOGGERS.register("jsonl", schema=LoggerConfig)
class JsonlLogger(Logger):
    """`logger=jsonl`: metrics.jsonl, one JSON object per record; always written, so this
    option adds nothing else."""

    @property
    def path(self) -> Path:
        return RunFolder(self.run_dir).metrics_path

    def log_metrics(self, record: dict[str, Any]) -> None:
        # One write per line: a crash loses at most the line being written.
        with open(self.path, "a") as f:
            f.write(json.dumps(record, allow_nan=False) + "\n")

    def resume(self, epoch: int) -> None:
        records = RunFolder(self.run_dir).read_metrics()
        kept = [r for r in records if kept_on_resume(r["epoch"], r["split"], epoch)]
        text = "".join(json.dumps(r, allow_nan=False) + "\n" for r in kept)
        write_atomic(self.path, lambda tmp: Path(tmp).write_text(text))
