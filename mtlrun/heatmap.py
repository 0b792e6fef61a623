"""The task-affinity matrix (TAG, Fifty et al. 2021) as a run logs it and as a heatmap: drawn by
the loop each epoch of a run that measures affinity, and by `mtlrun report`. No torch."""

from pathlib import Path

import numpy as np


def affinity_matrix(record: dict, tasks: list[str]) -> list[list[float | None]]:
    """The matrix back from a record's `train/affinity/<i>/<j>` keys (None on the diagonal)."""
    return [
        [None if i == j else record.get(f"train/affinity/{i}/{j}") for j in tasks] for i in tasks
    ]


def save_heatmap(
    tasks: list[str], matrix: list[list[float | None]], title: str, path: Path
) -> None:
    """The T×T matrix as a heatmap, each cell labelled with its value."""
    from matplotlib.figure import Figure  # imported when used: a run measures affinity rarely

    values = np.array([[np.nan if v is None else v for v in row] for row in matrix])
    limit = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    limit = limit or 1.0
    figure = Figure(figsize=(1.6 + 0.9 * len(tasks), 1.2 + 0.8 * len(tasks)), layout="constrained")
    axes = figure.subplots()
    image = axes.imshow(values, cmap="RdBu", vmin=-limit, vmax=limit)
    axes.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right")
    axes.set_yticks(range(len(tasks)), tasks)
    axes.set_xlabel("task j (whose loss changes)")
    axes.set_ylabel("task i (the step)")
    for i, row in enumerate(matrix):
        for j, value in enumerate(row):
            if value is not None:
                axes.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize="small")
    axes.set_title(title, fontsize="medium")
    figure.colorbar(image, ax=axes, shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
