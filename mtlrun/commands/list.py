"""`mtlrun list [DIR]`: the runs under DIR (default `outputs`), one line each: start time,
experiment, status, key metric and folder, oldest first."""

import sys
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from mtlrun.errors import UserError
from mtlrun.report.collect import Run, find_runs
from mtlrun.terminal import format_value

USAGE = "usage: mtlrun list [DIR]   (default DIR: outputs)"
STATUS_STYLE = {"completed": "green", "failed": "red", "crashed": "red", "running": "yellow"}


def key_metric(run: Run) -> str:
    """The config's `optimized_metric` when set, else the primary metric of the first task that
    has one (summary.json's `primary_metrics`), else the first task's last test metric (runs of
    an older mtlrun: tasks report their headline metric last)."""
    metrics = run.metrics
    name = run.config.get("optimized_metric")
    if name not in metrics:
        primary = [run.primary_metrics[task] for task in run.tasks if task in run.primary_metrics]
        name = primary[0] if primary and primary[0] in metrics else None
    if name is None:
        first_task = next(iter(run.tasks), None)
        own = [key for key in metrics if key.startswith(f"test/{first_task}/")]
        name = own[-1] if own else next(iter(metrics), None)
    return f"{name} {format_value(metrics[name])}" if name else ""


def started(run: Run) -> str:
    start = run.meta.get("start_time")
    return datetime.fromisoformat(start).strftime("%Y-%m-%d %H:%M") if start else "?"


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    if len(args) > 1 or (args and args[0].startswith("-")):
        raise UserError(USAGE)
    runs = find_runs(Path(args[0] if args else "outputs"))
    runs.sort(key=lambda run: run.meta.get("start_time") or "")
    lines = [(started(run), run.name, run.status, key_metric(run), str(run.path)) for run in runs]
    widths = [max(len(line[column]) for line in lines) for column in range(4)]
    # Plain padded columns, never wrapped: one line per run, for grep and cut too.
    console = Console(highlight=False, soft_wrap=True)
    for date, name, status, metric, folder in lines:
        colour = STATUS_STYLE.get(status, "magenta")
        console.print(
            f"{date:<{widths[0]}}  {escape(f'{name:<{widths[1]}}')}  "
            f"[{colour}]{status:<{widths[2]}}[/]  {metric:<{widths[3]}}  {escape(folder)}"
        )
