"""Comparing runs: the overrides that differ, the metrics to show, and runs grouped into
configurations (equal resolved configs but for the seed), aggregated as mean, standard
deviation and 95 % interval."""

import json
import math
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatch
from typing import Any

from mtlrun.errors import UserError, listed
from mtlrun.report.collect import Run
from mtlrun.report.inference import t_interval


def varying_keys(runs: list[Run]) -> list[str]:
    """The override keys whose value is not the same in every run (absent counts as a value),
    in the order they first appear."""
    keys = list(dict.fromkeys(key for run in runs for key in run.overrides))
    return [key for key in keys if len({run.overrides.get(key) for run in runs}) > 1]


def choose_metrics(runs: list[Run], patterns: list[str]) -> list[str]:
    """The metrics to report: those matching `patterns` (shell-style, e.g. test/*/acc), or
    every test metric any run reports."""
    present = list(dict.fromkeys(key for run in runs for key in run.metrics))
    if not patterns:
        return [key for key in present if key.startswith("test/")]
    chosen: list[str] = []
    for pattern in patterns:
        matched = [key for key in present if fnmatch(key, pattern)]
        if not matched:
            raise UserError(f"metrics={pattern!r} matches no metric; found: {listed(present)}")
        chosen += [key for key in matched if key not in chosen]
    return chosen


@dataclass
class Stat:
    mean: float
    std: float | None  # sample standard deviation (n − 1); None for one value or a NaN
    n: int
    ci95: list[float] | None = None  # the mean's 95 % t interval [low, high], with `std`

    @classmethod
    def of(cls, values: list[float]) -> "Stat | None":
        if not values:
            return None
        # A NaN or infinite value (a diverged metric) leaves the spread undefined; stdev would
        # raise on it.
        spread = len(values) > 1 and all(math.isfinite(value) for value in values)
        std = statistics.stdev(values) if spread else None
        return cls(statistics.fmean(values), std, len(values), t_interval(values))


# Resolved-config keys (with everything under them) in which a single-task baseline may differ
# from the multi-task configuration it is compared with, each with why it is ignored.
# Configurations are grouped by all the other keys plus COMPARED_KEYS.
IGNORED_KEYS: dict[str, str] = {
    "sharing": "what Δm measures: the multi-task strategy against none",
    "weighting": "how the task losses are combined, part of the multi-task method",
    "seed": "seeds are repeats of one configuration, paired or averaged",
    "name": "a label for the run folder",
    "device": "where a run trains, not what it trains",
    "trainer.progress": "the progress bar",
    "logger": "where metrics are written, not their values",
    "dataset.root": "where the data files are, not which data",
    "dataset.download": "whether missing data files are fetched",
    "dataset.cache_dir": "where composed datasets are cached",
    "optimized_metric": "what a sweeper reads after training",
    "hydra": "Hydra's own settings: output folders, launcher, sweeper",
}
# The ignored keys that still tell configurations apart: what a sweep over methods compares.
COMPARED_KEYS = ("sharing", "weighting")


def is_under(key: str, prefixes: Iterable[str]) -> bool:
    """Whether the dotted `key` is one of `prefixes` or lies under one."""
    return any(key == prefix or key.startswith(f"{prefix}.") for prefix in prefixes)


def trained_config(run: Run) -> dict[str, Any]:
    """The run's resolved config as dotted keys, without the keys that neither change what is
    trained nor what is measured (and without the seed); sharing and weighting stay."""
    ignored = [key for key in IGNORED_KEYS if key not in COMPARED_KEYS]
    return {key: value for key, value in run.flat_config.items() if not is_under(key, ignored)}


@dataclass
class Configuration:
    """Runs whose resolved configs are equal apart from the seed and the ignored keys."""

    name: str  # c1, c2, ... in the order of their first runs
    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    @property
    def single_task(self) -> bool:
        return self.first.single_task

    @property
    def overrides(self) -> dict[str, str]:
        """The command-line overrides all its runs share, seed aside: labels for its row."""
        return {
            key: value
            for key, value in self.first.overrides.items()
            if key != "seed" and all(run.overrides.get(key) == value for run in self.runs)
        }

    @property
    def measured(self) -> list[Run]:
        """The runs that finished with test metrics."""
        return [run for run in self.runs if run.metrics]

    @property
    def seeds(self) -> list[int]:
        return sorted({run.seed for run in self.runs if run.seed is not None})

    def stat(self, metric: str) -> Stat | None:
        return Stat.of([run.metrics[metric] for run in self.runs if metric in run.metrics])

    def seconds(self) -> Stat | None:
        return Stat.of([run.seconds for run in self.runs if run.seconds is not None])

    def seconds_per_epoch(self) -> Stat | None:
        per_epoch = [run.seconds_per_epoch for run in self.runs]
        return Stat.of([seconds for seconds in per_epoch if seconds is not None])


def mean_ranks(configs: list[Configuration]) -> list[float | None]:
    """Each configuration's mean rank (MR) over the tasks' primary metrics: per metric, the
    configurations are ranked by their mean over seeds (1 = best, ties share the mean of their
    places), and a configuration's ranks are averaged over the metrics it reports. None for a
    configuration without any."""
    runs = [run for config in configs for run in config.measured]
    primary = list(dict.fromkeys(key for run in runs for key in run.primary_metrics.values()))
    directions = {key: way for run in runs for key, way in run.directions.items()}
    ranks: list[list[float]] = [[] for _ in configs]
    for metric in primary:
        sign = 1.0 if directions.get(metric, "min") == "min" else -1.0
        stats = {i: config.stat(metric) for i, config in enumerate(configs)}
        # A diverged configuration (a NaN mean) is not ranked on that metric.
        scores = {
            i: sign * stat.mean for i, stat in stats.items() if stat and math.isfinite(stat.mean)
        }
        ordered = sorted(scores.values())
        for i, score in scores.items():
            places = [place for place, other in enumerate(ordered, 1) if other == score]
            ranks[i].append(statistics.fmean(places))
    return [statistics.fmean(r) if r else None for r in ranks]


def configurations(runs: list[Run]) -> list[Configuration]:
    """The runs grouped by their trained config, named c1, c2, ... in order of appearance."""
    groups: dict[str, list[Run]] = {}
    for run in runs:
        key = json.dumps(trained_config(run), sort_keys=True, default=str)
        groups.setdefault(key, []).append(run)
    return [Configuration(f"c{index}", group) for index, group in enumerate(groups.values(), 1)]
