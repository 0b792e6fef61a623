"""What the terminal shows, mirrored into train.log: progress bars, epoch lines, metric tables."""

import os
from collections import defaultdict
from pathlib import Path

from rich.console import Console, RenderableType
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table


class Reporter:
    """Prints to the terminal and appends to train.log; with no `log_path` (a DDP rank other
    than 0), it shows nothing at all."""

    def __init__(self, log_path: Path | None, show_progress: bool = True) -> None:
        self.console = Console(highlight=False, quiet=log_path is None)
        self._log_file = open(log_path or os.devnull, "a", encoding="utf-8")  # noqa: SIM115
        self._log = Console(file=self._log_file, width=120, no_color=True, highlight=False)
        self.show_progress = show_progress and self.console.is_terminal and log_path is not None

    def print(self, *renderables: RenderableType) -> None:
        self.console.print(*renderables)
        self._log.print(*renderables)
        self._log_file.flush()

    def progress(self) -> Progress:
        """A transient per-epoch bar; advancing it is host-side work only (no device sync)."""
        return Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
            disable=not self.show_progress,
        )

    def close(self) -> None:
        self._log_file.close()


# More metric names than this (the per-pixel tasks have ten between them) would not fit a
# terminal's width as columns: each task's metrics are then listed in one cell of its row.
MAX_COLUMNS = 7


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    """One row per task, one column per metric name; keys are `<split>/<task>/<metric>`."""
    rows: dict[str, dict[str, float]] = defaultdict(dict)
    for key, value in metrics.items():
        parts = key.split("/")
        task, metric = ("(total)", parts[-1]) if len(parts) == 2 else (parts[1], parts[2])
        rows[task][metric] = value
    columns = sorted({m for row in rows.values() for m in row}, key=lambda m: (m != "loss", m))
    table = Table(title=title, title_justify="left")
    table.add_column("task", no_wrap=True)
    if len(columns) > MAX_COLUMNS:
        table.add_column("metrics")
        for task, row in rows.items():
            cells = (f"{c} {format_value(row[c])}" for c in columns if c in row)
            table.add_row(task, "  ".join(cells))
        return table
    for column in columns:
        table.add_column(column, justify="right")
    for task, row in rows.items():
        table.add_row(task, *(format_value(row[c]) if c in row else "" for c in columns))
    return table


def format_value(value: float) -> str:
    return f"{value:.4f}" if abs(value) < 10 else f"{value:.2f}"
