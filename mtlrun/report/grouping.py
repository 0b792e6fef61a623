"""Task groups from inter-task affinity (Fifty et al., "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS 2021: TAG): the best split of the tasks into k groups, from
the matrix a run logged (its heatmap is `mtlrun.heatmap`'s). No torch: `mtlrun report` stays
light."""

from collections.abc import Iterator


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
