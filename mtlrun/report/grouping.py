"""Task groups from inter-task affinity (Fifty et al., "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS 2021: TAG): the matrix a run logged, its heatmap, and the best
split of the tasks into k groups. No torch: `mtlrun report` stays light."""

from collections.abc import Iterator
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


def partitions(items: list[str], k: int) -> Iterator[list[list[str]]]:
    """Every split of `items` into `k` non-empty groups (order within and between groups
    ignored)."""
    if k == 1:
        yield [list(items)]
        return
    if len(items) == k:
        yield [[item] for item in items]
        return
    if len(items) < k:
        return
    first, rest = items[0], items[1:]
    for split in partitions(rest, k - 1):  # `first` alone
        yield [[first], *split]
    for split in partitions(rest, k):  # `first` joins a group
        for g in range(len(split)):
            yield [*split[:g], [first, *split[g]], *split[g + 1 :]]


def best_groups(
    tasks: list[str], matrix: list[list[float | None]], k: int
) -> tuple[list[list[str]], float]:
    """The split into `k` groups with the highest total affinity: Σ_j of the mean Z_{i→j} over
    the other tasks i of j's group (0 for a task alone), as TAG scores a grouping (their §3.3,
    each task served by its own group). Exhaustive: fine for the few tasks MTL runs have."""
    index = {task: n for n, task in enumerate(tasks)}

    def score(groups: list[list[str]]) -> float:
        total = 0.0
        for group in groups:
            for target in group:
                others = [matrix[index[s]][index[target]] for s in group if s != target]
                known = [value for value in others if value is not None]
                total += sum(known) / len(known) if known else 0.0
        return total

    best = max(partitions(tasks, k), key=score)
    return best, score(best)


def as_override(groups: list[list[str]]) -> str:
    """`[[a,b],[c]]`, as the command line writes it."""
    return "[" + ",".join("[" + ",".join(group) + "]" for group in groups) + "]"
