"""Δm, the average relative gain of a multi-task configuration over its single-task baseline
(Maninis et al. 2019; Vandenhende et al. 2021): one term per task, through the task's primary
metric, each metric's direction read from the runs' summary.json."""

import json
import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from mtlrun.errors import UserError, listed
from mtlrun.report.collect import Run
from mtlrun.report.compare import (
    COMPARED_KEYS,
    IGNORED_KEYS,
    Configuration,
    Stat,
    is_under,
    trained_config,
)
from mtlrun.report.inference import paired_p_value

SIGN = "positive = better than single-task"
CONVENTION = (
    "Δm = (1/T) Σ_t (−1)^d_t (M_mtl,t − M_stl,t) / |M_stl,t| × 100 %, over the T tasks with a "
    f"primary metric, d_t = 1 where lower is better: {SIGN}. Each task counts once, through "
    "its primary metric (or the mean of the metrics named with delta_m=); KL never counts. "
    "Paired over seeds (mean ± the half-width of the 95 % t interval of the per-seed Δm) when "
    "both configurations have the same seeds, else from the seed means (then no interval)."
)
MATCHING = (
    "Baseline: the single-task configuration (sharing=single_task) whose resolved config equals "
    f"the multi-task configuration's in every key but {', '.join(IGNORED_KEYS)} (and the keys "
    "under them)."
)
OLD_SUMMARY = "its summary.json has no metric directions (written by an older mtlrun); rerun it"


def is_kl(key: str) -> bool:
    """KL never enters Δm: the nelbo already contains it, and a lower KL alone is not a better
    model (a collapsed posterior has none)."""
    return key.rsplit("/", 1)[-1] == "kl"


def check_delta_m_keys(keys: list[str], runs: list[Run]) -> None:
    """Refuse, in one line, a `delta_m=` key that cannot enter Δm."""
    reported = list(dict.fromkeys(key for run in runs for key in run.metrics))
    with_direction = {key for run in runs for key in run.directions}
    usable = [key for key in reported if key.count("/") == 2 and not is_kl(key)]
    for key in keys:
        parts = key.split("/")
        if is_kl(key):
            raise UserError(
                f"delta_m={key}: KL never enters Δm (the nelbo already contains it); "
                "name another metric, e.g. test/<task>/nelbo"
            )
        if len(parts) != 3 or parts[0] != "test":
            raise UserError(f"delta_m={key} is not a task's test metric; name test/<task>/<metric>")
        if key not in reported:
            raise UserError(f"delta_m={key} is reported by no run; found: {listed(usable)}")
        if key not in with_direction:
            raise UserError(
                f"delta_m={key} has no direction in any summary.json (written by an older "
                "mtlrun); rerun the runs"
            )


def delta_m_terms(
    tasks: list[str], primary_metrics: dict[str, str], chosen: list[str]
) -> dict[str, list[str]]:
    """Each task's metric keys in Δm: its primary metric, or the `delta_m=` keys naming it."""
    terms = {task: [key] for task, key in primary_metrics.items() if not is_kl(key)}
    named: dict[str, list[str]] = {}
    for key in chosen:
        task = key.split("/")[1]
        if task in tasks:
            named.setdefault(task, []).append(key)
    return terms | named


def shown(flat_config: dict[str, Any], key: str) -> str:
    if key not in flat_config:
        return "absent"
    value = flat_config[key]
    return value if isinstance(value, str) else json.dumps(value)


def matched_config(config: Configuration) -> dict[str, Any]:
    """What a baseline must share with `config`: its trained config but sharing and weighting."""
    return {
        key: value
        for key, value in trained_config(config.first).items()
        if not is_under(key, COMPARED_KEYS)
    }


def differences(single_task: Configuration, config: Configuration) -> dict[str, tuple[str, str]]:
    """The keys a baseline may not differ in but does: key → (its value, the config's value)."""
    stl, mtl = matched_config(single_task), matched_config(config)
    return {
        key: (shown(stl, key), shown(mtl, key))
        for key in dict.fromkeys([*mtl, *stl])
        if key not in stl or key not in mtl or stl[key] != mtl[key]
    }


def find_baseline(config: Configuration, single_task: list[Configuration]) -> Configuration | str:
    """The one single-task configuration `config` is measured against, or why there is none."""
    if not single_task:
        return "no single-task baseline: no run here has sharing=single_task"
    gaps = [(differences(candidate, config), candidate) for candidate in single_task]
    matches = [candidate for gap, candidate in gaps if not gap]
    if len(matches) == 1:
        return matches[0]
    if matches:
        names = ", ".join(match.name for match in matches)
        return f"no single-task baseline: {len(matches)} configurations match ({names})"
    gap, closest = min(gaps, key=lambda item: len(item[0]))
    listed = [f"{key} ({stl} vs {mtl})" for key, (stl, mtl) in gap.items()]
    more = f" and {len(listed) - 3} more keys" if len(listed) > 3 else ""
    return (
        f"no single-task baseline: the closest ({closest.name}) differs in "
        f"{', '.join(listed[:3])}{more}"
    )


@dataclass
class Delta:
    """Δm of one multi-task configuration, or why it has none."""

    value: Stat | None  # in %; over seed pairs, or one value from the seed means
    reason: str | None = None  # why `value` is None
    baseline: Configuration | None = None
    paired_seeds: list[int] | None = None  # None: computed from the seed means
    terms: dict[str, list[str]] = field(default_factory=dict)  # task → its metric keys
    per_seed: list[float] = field(default_factory=list)  # Δm of each seed pair, when paired

    @property
    def raw_p_value(self) -> float | None:
        """The paired t-test's p-value before the correction over configurations: None
        unless paired over two seeds or more."""
        return paired_p_value(self.per_seed) if self.paired_seeds else None

    @property
    def method(self) -> str:
        if self.value is None:
            return ""
        if self.paired_seeds is None:
            return "from seed means"
        return f"paired over seeds {','.join(str(seed) for seed in self.paired_seeds)}"


def average_gain(
    mtl: dict[str, float],
    stl: dict[str, float],
    terms: dict[str, list[str]],
    directions: dict[str, str],
) -> float:
    """Δm in % from one set of multi-task and single-task values; a task's metrics are averaged
    first, so every task weighs the same."""

    def gain(key: str) -> float:
        sign = -1 if directions[key] == "min" else 1
        return sign * (mtl[key] - stl[key]) / abs(stl[key]) * 100

    return statistics.fmean(statistics.fmean(gain(key) for key in keys) for keys in terms.values())


def seed_means(runs: list[Run], keys: list[str]) -> dict[str, float]:
    return {key: statistics.fmean(run.metrics[key] for run in runs) for key in keys}


def delta_m(config: Configuration, single_task: list[Configuration], chosen: list[str]) -> Delta:
    """Δm of `config` against its baseline among `single_task`; `chosen`: the `delta_m=` keys."""
    runs = config.measured
    if not runs:
        return Delta(None, "no run of it finished with test metrics")
    if not all(run.knows_directions for run in runs):
        return Delta(None, OLD_SUMMARY)
    terms = delta_m_terms(list(runs[0].tasks), runs[0].primary_metrics, chosen)
    if not terms:
        return Delta(None, "none of its tasks has a primary metric")
    found = find_baseline(config, single_task)
    if isinstance(found, str):
        return Delta(None, found, terms=terms)

    def undefined(reason: str) -> Delta:
        return Delta(None, reason, found, terms=terms)

    baseline_runs = found.measured
    if not baseline_runs:
        return undefined(f"no run of its baseline {found.name} finished with test metrics")
    keys = [key for task_keys in terms.values() for key in task_keys]
    directions = {key: way for run in runs for key, way in run.directions.items()}
    for key in keys:
        if key not in directions:
            return undefined(f"{key} has no direction in its summary.json")
        if any(key not in run.metrics for run in runs + baseline_runs):
            return undefined(
                f"{key} is not reported by every run of {config.name} and {found.name}"
            )

    seeds = [run.seed for run in runs]
    paired_seeds = None
    if (
        None not in seeds
        and len(set(seeds)) == len(seeds)
        and sorted(seeds) == sorted(run.seed for run in baseline_runs)
    ):
        by_seed = {run.seed: run for run in baseline_runs}
        pairs = [(run.metrics, by_seed[run.seed].metrics) for run in runs]
        paired_seeds = sorted(seeds)
    else:
        pairs = [(seed_means(runs, keys), seed_means(baseline_runs, keys))]
    for mtl, stl in pairs:
        for key in keys:
            if not (math.isfinite(mtl[key]) and math.isfinite(stl[key])):
                return undefined(f"{key} is not a finite number")
            if stl[key] == 0:
                return undefined(f"{key} is 0 in the baseline {found.name}")
    values = [average_gain(mtl, stl, terms, directions) for mtl, stl in pairs]
    return Delta(Stat.of(values), None, found, paired_seeds, terms, values)
