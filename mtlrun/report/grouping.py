"""Task groups from inter-task affinity (Fifty et al., "Efficiently Identifying Task Groupings
for Multi-Task Learning", NeurIPS 2021: TAG): the matrix a run logged, averaged over training,
and TAG's choice of k groups (the heatmap is `mtlrun.heatmap`'s). No torch: `mtlrun report`
stays light."""

import itertools
import math

from mtlrun.heatmap import affinity_matrix


def mean_matrix(matrices: list[list[list[float | None]]]) -> list[list[float | None]]:
    """The cell-wise mean of affinity matrices, over those that have the cell (None if none)."""
    size = len(matrices[0])
    mean: list[list[float | None]] = []
    for i in range(size):
        row: list[float | None] = []
        for j in range(size):
            values = [m[i][j] for m in matrices if m[i][j] is not None]
            row.append(sum(values) / len(values) if values else None)
        mean.append(row)
    return mean


def training_affinity(records: list[dict], tasks: list[str]) -> list[list[float | None]]:
    """The mean over a run's epochs of their affinity matrices (each the mean over the epoch's
    measured steps, so with as many steps per epoch the mean over every measured step of
    training, as TAG's Algorithm 1 averages Z)."""
    return mean_matrix([affinity_matrix(record, tasks) for record in records])


def group_scores(
    tasks: list[str], matrix: list[list[float | None]], group: frozenset[str]
) -> dict[str, float]:
    """Each task's score in `group`, as TAG's network selection scores it: the mean affinity onto
    it, Z_{i→j} over the group's other tasks i (−∞ alone: TAG's −10⁶, a task never left to
    itself while a group can serve it)."""
    index = {task: n for n, task in enumerate(tasks)}
    scores = {}
    for target in group:
        onto = [matrix[index[source]][index[target]] for source in group if source != target]
        known = [value for value in onto if value is not None]
        scores[target] = sum(known) / len(known) if known else -math.inf
    return scores


def best_groups(
    tasks: list[str], matrix: list[list[float | None]], k: int, disjoint: bool = False
) -> tuple[list[list[str]], float]:
    """TAG's network selection (Fifty et al. 2021; google-research/tag's selection notebook):
    at most `k` groups chosen among all subsets of the tasks, overlap allowed, that together
    hold every task; each task is served by the group where its score (`group_scores`) is
    highest, and a choice scores the mean over the tasks of their best score. Of equal scores,
    the fewest groups. With `disjoint`, only choices whose groups do not overlap (what
    `sharing=grouped` trains). Exhaustive over the 2^T − 1 subsets: fine for the few tasks MTL
    runs have."""
    subsets = [
        frozenset(combination)
        for size in range(2, len(tasks) + 1)
        for combination in itertools.combinations(tasks, size)
    ]  # a lone task scores −∞: a subset of one never serves best while the whole set can
    scores = {subset: group_scores(tasks, matrix, subset) for subset in subsets}
    best, chosen = (-math.inf, -k - 1), (frozenset(tasks),)  # beaten by any choice below
    for count in range(1, k + 1):
        for groups in itertools.combinations(subsets, count):
            if disjoint and sum(map(len, groups)) != len(frozenset().union(*groups)):
                continue
            if len(frozenset().union(*groups)) < len(tasks):
                continue
            served = [max(scores[g][task] for g in groups if task in g) for task in tasks]
            score = sum(served) / len(served)
            if (score, -count) > best:
                best, chosen = (score, -count), groups
    order = {task: n for n, task in enumerate(tasks)}
    return [sorted(group, key=order.get) for group in chosen], best[0]


def serving_groups(
    tasks: list[str], matrix: list[list[float | None]], groups: list[list[str]]
) -> dict[str, list[str]]:
    """The group that serves each task: of those holding it, the one where it scores highest
    (TAG takes the task's predictions from that group's network)."""
    scored = [(group, group_scores(tasks, matrix, frozenset(group))) for group in groups]
    return {
        task: max((pair for pair in scored if task in pair[0]), key=lambda pair: pair[1][task])[0]
        for task in tasks
    }
