"""Comparing runs: the overrides that differ, the metrics to show, and seeds of one
configuration aggregated as mean ± standard deviation."""

import statistics
from dataclasses import dataclass
from fnmatch import fnmatch

from mtlrun.errors import UserError
from mtlrun.report.runs import Run


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
            raise UserError(
                f"metrics={pattern!r} matches no metric; found: {', '.join(present) or 'none'}"
            )
        chosen += [key for key in matched if key not in chosen]
    return chosen


@dataclass
class Stat:
    mean: float
    std: float | None  # sample standard deviation (n − 1); None for a single value
    n: int

    @classmethod
    def of(cls, values: list[float]) -> "Stat | None":
        if not values:
            return None
        std = statistics.stdev(values) if len(values) > 1 else None
        return cls(statistics.fmean(values), std, len(values))


@dataclass
class Configuration:
    """Runs with the same overrides apart from `seed`."""

    overrides: dict[str, str]
    runs: list[Run]

    @property
    def first(self) -> Run:
        return self.runs[0]

    def stat(self, metric: str) -> Stat | None:
        return Stat.of([run.metrics[metric] for run in self.runs if metric in run.metrics])

    def seconds(self) -> Stat | None:
        return Stat.of([run.seconds for run in self.runs if run.seconds is not None])


def configurations(runs: list[Run]) -> list[Configuration]:
    groups: dict[tuple[tuple[str, str], ...], Configuration] = {}
    for run in runs:
        overrides = {key: value for key, value in run.overrides.items() if key != "seed"}
        key = tuple(sorted(overrides.items()))
        groups.setdefault(key, Configuration(overrides, [])).runs.append(run)
    return list(groups.values())
