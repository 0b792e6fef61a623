"""Learning curves: one PNG per task, one panel per metric, one line per run."""

import re
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mtlrun.report.collect import Run


def learning_curves(
    runs: list[Run], labels: list[str], metrics: list[str], out_dir: Path
) -> list[Path]:
    """The validation curve of every chosen `test/<task>/<metric>` that is also logged on the
    validation split, written to `out_dir/curves_<task>.png`."""
    # Figure without pyplot: the Agg canvas, no global state, nothing opens a window.
    records = [[r for r in run.records if r.get("split") == "val"] for run in runs]
    logged = {key for run_records in records for record in run_records for key in record}
    panels: dict[str, list[str]] = {}
    for key in metrics:
        parts = key.split("/")
        if len(parts) == 3 and f"val/{parts[1]}/{parts[2]}" in logged:
            panels.setdefault(parts[1], []).append(f"val/{parts[1]}/{parts[2]}")
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for task, keys in panels.items():
        figure = Figure(figsize=(1 + 3.6 * len(keys), 3.2), layout="constrained")
        for axes, key in zip(figure.subplots(1, len(keys), squeeze=False)[0], keys, strict=True):
            for run_records, label in zip(records, labels, strict=True):
                points = [(r["epoch"], r[key]) for r in run_records if key in r]
                if points:
                    axes.plot(*zip(*points, strict=True), marker="o", markersize=3, label=label)
            axes.set_title(key, fontsize="medium")
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.grid(alpha=0.3)
        handles, names = figure.axes[0].get_legend_handles_labels()
        figure.legend(handles, names, loc="outside right upper", fontsize="small")
        path = out_dir / f"curves_{re.sub(r'[^A-Za-z0-9_.-]', '_', task)}.png"
        figure.savefig(path, dpi=100)
        written.append(path)
    return written
