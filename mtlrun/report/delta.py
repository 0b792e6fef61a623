"""Δm, the average relative gain of a multi-task configuration over single-task baselines
(Maninis et al. 2019; Vandenhende et al. 2021), with each metric's direction taken from its
task's `directions`."""

import statistics
from dataclasses import dataclass, field
from typing import Any

from mtlrun.report.compare import Configuration
from mtlrun.report.runs import Run
from mtlrun.tasks import TASKS, Direction

CONVENTION = (
    "Δm = (1/T) Σ_t (1/M_t) Σ_m (−1)^d_m (M_mtl − M_stl) / |M_stl| × 100 %, with d_m = 1 where "
    "lower is better, so a positive Δm is a gain over the single-task baselines. M are means "
    "over seeds; the metrics of a task are its reported test metrics except its loss (kept "
    "only when it is the task's one metric); each task's terms are averaged first, so every "
    "task weighs the same."
)
MATCHING = (
    "Baselines: for each task of a multi-task configuration, the single-task configuration "
    "(sharing=single_task) that trains a task of the same name and type on the same dataset "
    "(equal resolved dataset config, root aside) and whose overrides differ least from the "
    "multi-task configuration's, ignoring seed, name, sharing.*, weighting.*, the tasks list "
    "and task weights. Two equally close baselines leave Δm undefined."
)


def direction(run: Run, metric_key: str) -> Direction | None:
    """Lower or higher is better for `test/<task>/<metric>`; None for other keys."""
    parts = metric_key.split("/")
    if len(parts) != 3 or parts[1] not in run.tasks or run.tasks[parts[1]] not in TASKS:
        return None
    return TASKS.get(run.tasks[parts[1]]).directions.get(parts[2])


def task_metrics(run: Run, metrics: list[str]) -> dict[str, list[str]]:
    """Each task's metric keys that count towards Δm."""
    per_task: dict[str, list[str]] = {}
    for key in metrics:
        if key.startswith("test/") and direction(run, key) is not None:
            per_task.setdefault(key.split("/")[1], []).append(key)
    return {
        task: [key for key in keys if not key.endswith("/loss")] or keys
        for task, keys in per_task.items()
    }


def counts_for_matching(key: str) -> bool:
    top = key.split(".")[0]
    if top in ("seed", "name", "sharing", "weighting"):
        return False
    return key != "tasks" and not (top == "tasks" and key.endswith(".weight"))


def distance(a: Configuration, b: Configuration) -> int:
    """How many overrides that matter for a baseline differ between two configurations."""
    keys = {key for key in a.overrides.keys() | b.overrides.keys() if counts_for_matching(key)}
    return sum(a.overrides.get(key) != b.overrides.get(key) for key in keys)


def dataset(run: Run) -> dict[str, Any]:
    return {key: value for key, value in run.config.get("dataset", {}).items() if key != "root"}


@dataclass
class Delta:
    value: float | None
    baselines: list[Configuration] = field(default_factory=list)
    reason: str = ""  # why `value` is None


def baseline(
    config: Configuration, task: str, single_task: list[Configuration]
) -> Configuration | str:
    """The single-task configuration to compare `task` of `config` with, or why there is none."""
    task_type = config.first.tasks[task]
    candidates = [
        candidate
        for candidate in single_task
        if candidate.first.tasks.get(task) == task_type
        and dataset(candidate.first) == dataset(config.first)
    ]
    if not candidates:
        return f"no single-task run of {task} on this dataset"
    closest = min(distance(config, candidate) for candidate in candidates)
    tied = [candidate for candidate in candidates if distance(config, candidate) == closest]
    if len(tied) > 1:
        return f"{len(tied)} single-task configurations fit {task} equally well"
    return tied[0]


def delta_m(config: Configuration, single_task: list[Configuration], metrics: list[str]) -> Delta:
    per_task = task_metrics(config.first, metrics)
    if not per_task:
        return Delta(None, reason="no test metric with a known direction")
    task_gains = []
    baselines: list[Configuration] = []
    for task, keys in per_task.items():
        reference = baseline(config, task, single_task)
        if isinstance(reference, str):
            return Delta(None, reason=reference)
        gains = []
        for key in keys:
            mtl, stl = config.stat(key), reference.stat(key)
            if mtl is None or stl is None:
                return Delta(None, reason=f"{key} is not reported by both configurations")
            if stl.mean == 0:
                return Delta(None, reason=f"{key} is 0 in the baseline")
            sign = -1 if direction(config.first, key) == "min" else 1
            gains.append(sign * (mtl.mean - stl.mean) / abs(stl.mean) * 100)
        task_gains.append(statistics.fmean(gains))
        if reference not in baselines:
            baselines.append(reference)
    return Delta(statistics.fmean(task_gains), baselines)
