"""metrics.csv: one row per record, for spreadsheets and pandas."""

import csv
from pathlib import Path
from typing import Any

from mtlrun.loggers.base import Logger, LoggerConfig, kept_on_resume
from mtlrun.parts import LOGGERS
from mtlrun.runfolder import write_atomic


@LOGGERS.register("csv", schema=LoggerConfig)
class CsvLogger(Logger):
    """`logger=csv`: metrics.csv in the run folder, one row per record (train, val and test),
    like metrics.jsonl.

    Train, validation and test records have different keys, so the header is every key seen
    so far: a record with a new key rewrites the file (atomically) under the wider header, any
    other record is appended as one line."""

    def __init__(self, config: LoggerConfig, run_dir: Path) -> None:
        super().__init__(config, run_dir)
        self.rows: list[dict[str, Any]] = []
        self.columns: list[str] = []

    @property
    def path(self) -> Path:
        return self.run_dir / "metrics.csv"

    def log_metrics(self, record: dict[str, Any]) -> None:
        self.rows.append(record)
        new = [key for key in record if key not in self.columns]
        if new:
            self.columns += new
            self._rewrite()
        else:
            with open(self.path, "a", newline="") as f:
                csv.DictWriter(f, self.columns).writerow(record)

    def resume(self, epoch: int) -> None:
        if not self.path.is_file():
            return
        with open(self.path, newline="") as f:
            reader = csv.DictReader(f)
            self.rows = [
                row for row in reader if kept_on_resume(int(row["epoch"]), row["split"], epoch)
            ]
            self.columns = list(reader.fieldnames or [])
        self._rewrite()

    def _rewrite(self) -> None:
        def write(tmp: str) -> None:
            with open(tmp, "w", newline="") as f:
                writer = csv.DictWriter(f, self.columns)
                writer.writeheader()
                writer.writerows(self.rows)

        write_atomic(self.path, write)
