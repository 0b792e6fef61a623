"""The scalarization front (Xin et al., "Do Current Multi-Task Optimization Methods in Deep
Learning Even Help?", NeurIPS 2022): the runs of `weighting=scalarization`, one configuration
per point of the weight grid, the ones no other point beats on every task, and whether they
beat each other configuration. The baseline a multi-task optimiser has to beat."""

import itertools
import json
import math
import re
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


def front_figures(
    front: Front,
    others: list[tuple[str, Configuration]],
    headers: dict[str, str],
    out_dir: Path,
    prefix: str,
) -> list[Path]:
    """One PNG per pair of tasks: the grid points' means (grey, each labelled with the first
    task's weight), the front as that pair sees it (a line through the points no other beats on
    the pair), and every configuration in `others`, by its label, with its 95 % t intervals as
    error bars."""
    from matplotlib.figure import Figure  # imported when used: most sweeps have no front

    written = []
    out_dir.mkdir(parents=True, exist_ok=True)
    for x_key, y_key in itertools.combinations(front.metrics, 2):
        figure = Figure(figsize=(7.5, 4.8), layout="constrained")
        axes = figure.subplots()
        grid = [point for point in front.grid if front.score(point) is not None]
        xs = [point.stat(x_key).mean for point in grid]  # type: ignore[union-attr]
        ys = [point.stat(y_key).mean for point in grid]  # type: ignore[union-attr]
        axes.plot(xs, ys, "s", color="0.6", markersize=5, label="scalarization grid")
        for point, x, y in zip(grid, xs, ys, strict=True):
            first_task, weight = next(iter(task_weights(point).items()))
            axes.annotate(f"{weight:g}", (x, y), fontsize="x-small", color="0.4",
                          xytext=(3, 3), textcoords="offset points")  # fmt: skip
        signs = [-1 if front.directions[key] == "min" else 1 for key in (x_key, y_key)]
        pair = [(signs[0] * x, signs[1] * y, x, y) for x, y in zip(xs, ys, strict=True)]
        line = sorted(
            (x, y) for sx, sy, x, y in pair if not any(dominates([ox, oy], [sx, sy])
                                                       for ox, oy, _, _ in pair)
        )  # fmt: skip
        axes.plot(*zip(*line, strict=True), color="0.3", linewidth=1.2, label="front")
        for label, config in others:
            if config.stat(x_key) is not None and config.stat(y_key) is not None:
                draw_errors(axes, [config], x_key, y_key, marker="o", label=label)
        axes.set_xlabel(headers.get(x_key, x_key))
        axes.set_ylabel(headers.get(y_key, y_key))
        axes.grid(alpha=0.3)
        axes.set_title(
            f"scalarization front: {len(front.members)} of {len(front.grid)} grid points "
            f"(labels: {first_task}'s weight)",
            fontsize="medium",
        )
        figure.legend(loc="outside right upper", fontsize="small")
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"{prefix}{x_key}_vs_{y_key}".replace("test/", ""))
        path = out_dir / f"{name}.png"
        figure.savefig(path, dpi=100)
        written.append(path)
    return written


def draw_errors(axes, configs: list[Configuration], x_key: str, y_key: str, **style) -> None:  # noqa: ANN001, ANN003
    """The configurations' means with their 95 % intervals as error bars (none for one seed)."""
    x_stats = [config.stat(x_key) for config in configs]
    y_stats = [config.stat(y_key) for config in configs]
    axes.errorbar(
        [stat.mean for stat in x_stats],  # type: ignore[union-attr]
        [stat.mean for stat in y_stats],  # type: ignore[union-attr]
        xerr=half_widths(x_stats),
        yerr=half_widths(y_stats),
        linestyle="none",
        capsize=2,
        markersize=5,
        **style,
    )


def half_widths(stats: list[Stat | None]) -> list[float]:
    return [
        0.0 if stat is None or stat.ci95 is None else stat.ci95[1] - stat.mean for stat in stats
    ]
