"""The scalarization front (Xin et al., "Do Current Multi-Task Optimization Methods in Deep
Learning Even Help?", NeurIPS 2022): the runs of `weighting=scalarization`, one configuration
per point of the weight grid, the ones no other point beats on every task, and whether they
beat each other configuration. The baseline a multi-task optimiser has to beat."""

import itertools
import json
import math
import re
import statistics
import textwrap
from dataclasses import dataclass
from pathlib import Path

from mtlrun.report.compare import Configuration, Stat
from mtlrun.report.delta import matched_config
from mtlrun.simplex import LOSS_FREE_TASK_TYPES, lattice_point, middle_point

SCALARIZATION = "scalarization"
RULE = (
    "Scalarization front (Xin et al. 2022): the weighting=scalarization runs, one configuration "
    "per point of the grid of task weights, and among them the points that no other point "
    "beats on every task's primary metric (means over seeds). A configuration is dominated by "
    "the front when some front point's means are at least as good on every task's primary "
    "metric and better on at least one; it is compared only with the grid runs whose config "
    "equals its own but for sharing and weighting (as a Δm baseline's must). This compares "
    "means, not a test; the figures' error bars are 95 % t intervals."
)


def is_grid_point(config: Configuration) -> bool:
    return config.first.config.get("weighting", {}).get("name") == SCALARIZATION


def task_weights(config: Configuration) -> dict[str, float]:
    """The weights a grid point trained with, by task, as the weighting computes them."""
    weighting, tasks = config.first.config["weighting"], config.first.config.get("tasks", {})
    weighted = [
        name for name, node in tasks.items() if node.get("type") not in LOSS_FREE_TASK_TYPES
    ]
    resolution, point = weighting.get("resolution", 8), weighting.get("point")
    if point is None:
        point = middle_point(resolution, len(weighted))
    return dict(zip(weighted, lattice_point(resolution, len(weighted), point), strict=True))


def grid_key(config: Configuration) -> str:
    """What a configuration shares with the grid it is compared with."""
    return json.dumps(matched_config(config), sort_keys=True, default=str)


@dataclass
class Front:
    grid: list[Configuration]  # the grid points, in report order
    metrics: list[str]  # each task's primary metric
    directions: dict[str, str]  # metric → "min" or "max"

    def score(self, config: Configuration) -> list[float] | None:
        """The means of the primary metrics, negated where lower is better (higher is better
        throughout); None when one is missing or not finite."""
        stats = [config.stat(metric) for metric in self.metrics]
        if any(stat is None or not math.isfinite(stat.mean) for stat in stats):
            return None
        return [
            -stat.mean if self.directions[metric] == "min" else stat.mean
            for stat, metric in zip(stats, self.metrics, strict=True)  # type: ignore[union-attr]
        ]

    @property
    def members(self) -> list[Configuration]:
        """The grid points that no other grid point dominates."""
        scored = [point for point in self.grid if self.score(point) is not None]
        return [point for point in scored if not self.dominated(point)]

    def dominated(self, config: Configuration) -> bool | None:
        """Whether a front point dominates `config` (see RULE); None when `config` lacks a
        primary metric. A grid point is dominated exactly when it is off the front."""
        score = self.score(config)
        if score is None:
            return None
        others = (self.score(point) for point in self.grid if point is not config)
        return any(other is not None and dominates(other, score) for other in others)


def dominates(a: list[float], b: list[float]) -> bool:
    """Pareto dominance, higher better: `a` at least as good everywhere and better somewhere."""
    return all(x >= y for x, y in zip(a, b, strict=True)) and a != b


def scalarization_fronts(configs: list[Configuration]) -> dict[str, Front]:
    """The fronts among `configs`, by the config they were trained on (grid_key)."""
    grids: dict[str, list[Configuration]] = {}
    for config in configs:
        if is_grid_point(config) and config.measured:
            grids.setdefault(grid_key(config), []).append(config)
    fronts = {}
    for key, grid in grids.items():
        runs = [run for point in grid for run in point.measured if run.knows_directions]
        if not runs:
            continue
        metrics = list(runs[0].primary_metrics.values())
        directions = {metric: way for run in runs for metric, way in run.directions.items()}
        if metrics and all(metric in directions for metric in metrics):
            fronts[key] = Front(grid, metrics, directions)
    return fronts


@dataclass
class Point:
    """One configuration in a front figure: its means and the half-widths of their 95 %
    intervals (0 without one)."""

    label: str
    x: float
    y: float
    x_error: float = 0.0
    y_error: float = 0.0


def front_figures(
    front: Front,
    others: list[tuple[str, Configuration]],
    headers: dict[str, str],
    out_dir: Path,
    prefix: str,
) -> list[Path]:
    """One PNG per pair of tasks (draw_front), the grid points labelled with the first task's
    weight, `others` by their labels."""
    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    grid = [point for point in front.grid if front.score(point) is not None]
    first_task = next(iter(task_weights(front.grid[0])))
    for x_key, y_key in itertools.combinations(front.metrics, 2):
        compared = [
            (label, config)
            for label, config in others
            if config.stat(x_key) is not None and config.stat(y_key) is not None
        ]
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{prefix}{x_key}_vs_{y_key}".replace("test/", ""))
        path = out_dir / f"{name}.png"
        draw_front(
            [
                point(f"{task_weights(config)[first_task]:g}", config, x_key, y_key)
                for config in grid
            ],
            [point(label, config, x_key, y_key) for label, config in compared],
            (headers.get(x_key, x_key), headers.get(y_key, y_key)),
            (front.directions[x_key], front.directions[y_key]),
            f"scalarization front: {len(front.members)} of {len(front.grid)} grid points "
            f"(labels: {first_task}'s weight)",
            path,
        )
        written.append(path)
    return written


def point(label: str, config: Configuration, x_key: str, y_key: str) -> Point:
    x, y = config.stat(x_key), config.stat(y_key)
    assert x is not None and y is not None
    return Point(label, x.mean, y.mean, half_width(x), half_width(y))


def half_width(stat: Stat) -> float:
    return 0.0 if stat.ci95 is None else stat.ci95[1] - stat.mean


# Others' points lie in the view when each coordinate is within this many interquartile ranges
# of the others' median: a configuration far from the rest (a priority method that gives up a
# task) and the grid's ends (a task weighed 0 is not learnt) would squash the rest to a dot.
VIEW_SPREADS = 6
MARKERS = "osD^vP*Xph"  # with matplotlib's 10 colours: 100 configurations told apart


def draw_front(
    grid: list[Point],
    others: list[Point],
    axis_labels: tuple[str, str],
    directions: tuple[str, str],
    title: str,
    path: Path,
) -> None:
    """The grid points' means (grey squares with their labels), the front as this pair of
    metrics sees it (a line through the points no other beats on both), and every point of
    `others` with its intervals as error bars, into the PNG `path`. The view holds the others
    near the rest of them (`VIEW_SPREADS`) and the grid points among them; a note above the
    plot gives the coordinates of every point outside it."""
    from matplotlib.figure import Figure  # imported when used: most sweeps have no front

    # Tall enough for a legend line per configuration.
    figure = Figure(figsize=(7.5, max(4.8, 1.5 + 0.2 * len(others))), layout="constrained")
    axes = figure.subplots()
    axes.plot([p.x for p in grid], [p.y for p in grid], "s", color="0.6", markersize=5,
              label="scalarization grid")  # fmt: skip
    for p in grid:
        axes.annotate(p.label, (p.x, p.y), fontsize="x-small", color="0.4", xytext=(3, 3),
                      textcoords="offset points")  # fmt: skip
    signs = [-1 if way == "min" else 1 for way in directions]
    scores = [[signs[0] * p.x, signs[1] * p.y] for p in grid]
    line = sorted(
        (p.x, p.y)
        for p, score in zip(grid, scores, strict=True)
        if not any(dominates(other, score) for other in scores)
    )
    axes.plot(*zip(*line, strict=True), color="0.3", linewidth=1.2, label="front")
    for i, p in enumerate(others):
        axes.errorbar(p.x, p.y, xerr=p.x_error, yerr=p.y_error, marker=MARKERS[i // 10 % 10],
                      color=f"C{i % 10}", markersize=5, capsize=2, linestyle="none",
                      label=p.label)  # fmt: skip
    outside = set_view(axes, grid, others)
    if outside:
        note = "outside the view: " + ", ".join(
            f"{p.label} ({p.x:.4g}, {p.y:.4g})" for p in outside
        )
        axes.set_title(f"{title}\n{textwrap.fill(note, 80)}", fontsize="small")
    else:
        axes.set_title(title, fontsize="medium")
    axes.set_xlabel(axis_labels[0])
    axes.set_ylabel(axis_labels[1])
    axes.grid(alpha=0.3)
    figure.legend(loc="outside right upper", fontsize="small")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)


def set_view(axes, grid: list[Point], others: list[Point]) -> list[Point]:
    """Limit `axes` to the points (others with their intervals, grid points) within
    `VIEW_SPREADS` interquartile ranges of the others' median on both metrics, with a margin,
    where that leaves any point out; returns the points outside the view."""
    if len(others) < 2:
        return []
    near = [p for p in [*others, *grid] if within(p, others, "x") and within(p, others, "y")]
    low_x, high_x = min(p.x - p.x_error for p in near), max(p.x + p.x_error for p in near)
    low_y, high_y = min(p.y - p.y_error for p in near), max(p.y + p.y_error for p in near)
    margin_x, margin_y = 0.08 * (high_x - low_x) or 0.5, 0.08 * (high_y - low_y) or 0.5
    low_x, high_x = low_x - margin_x, high_x + margin_x
    low_y, high_y = low_y - margin_y, high_y + margin_y
    outside = [
        p for p in [*grid, *others] if not (low_x <= p.x <= high_x and low_y <= p.y <= high_y)
    ]
    if outside:
        axes.set_xlim(low_x, high_x)
        axes.set_ylim(low_y, high_y)
    return outside


def within(p: Point, others: list[Point], axis: str) -> bool:
    """`p`'s coordinate on `axis` within `VIEW_SPREADS` interquartile ranges of the others'
    median (of their total range where the quartiles coincide)."""
    values = sorted(getattr(o, axis) for o in others)  # two or more
    low, middle, high = statistics.quantiles(values, n=4)
    spread = (high - low) or (values[-1] - values[0])
    return abs(getattr(p, axis) - middle) <= VIEW_SPREADS * spread
