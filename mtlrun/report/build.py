"""`mtlrun report DIR`: the runs under DIR compared in tables (seeds aggregated, Δm against
single-task baselines), learning curves and the last image grids, written to DIR/report.md and
DIR/report.html, with the figures in DIR/report_files/, and the numbers in DIR/report.json."""

import json
import math
import os
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import quote

from mtlrun.config import as_override
from mtlrun.errors import UserError
from mtlrun.heatmap import save_heatmap
from mtlrun.report.collect import Run, find_runs
from mtlrun.report.compare import (
    Configuration,
    Stat,
    choose_metrics,
    configurations,
    mean_ranks,
    varying_keys,
)
from mtlrun.report.delta import CONVENTION, MATCHING, SIGN, Delta, check_delta_m_keys, delta_m
from mtlrun.report.document import Block, Heading, Images, Table, Text, to_html, to_markdown
from mtlrun.report.figures import learning_curves
from mtlrun.report.front import (
    RULE,
    front_figures,
    grid_key,
    half_width,
    is_grid_point,
    scalarization_fronts,
    task_weights,
)
from mtlrun.report.grouping import best_groups, mean_matrix, serving_groups, training_affinity
from mtlrun.report.inference import TEST, holm, verdict
from mtlrun.runfolder import write_atomic
from mtlrun.terminal import format_value

FILES = "report_files"
AFFINITY = "train/affinity/"  # the keys of the affinity a run measured


def seconds(value: float) -> str:
    return f"{value:.1f}"


def format_stat(stat: Stat | None, fmt: Callable[[float], str] = format_value) -> str:
    """`mean ± h`, h the half-width of the mean's 95 % t interval; the mean alone for one run."""
    if stat is None:
        return ""
    return fmt(stat.mean) if stat.ci95 is None else f"{fmt(stat.mean)} ± {fmt(half_width(stat))}"


def metric_header(key: str, runs: list[Run]) -> str:
    """`digit/acc ↑`: the key without `test/`, with an arrow for the better direction."""
    way = next((run.directions[key] for run in runs if key in run.directions), None)
    return key.removeprefix("test/") + {"min": " ↓", "max": " ↑"}.get(way or "", "")


def format_delta(delta: Delta | None) -> str:
    if delta is None:
        return "baseline"
    if delta.value is None:
        return "—"
    value = delta.value
    return (
        f"{value.mean:+.2f}"
        if value.ci95 is None
        else f"{value.mean:+.2f} ± {half_width(value):.2f}"
    )


def format_p_value(p_value: float | None) -> str:
    if p_value is None:
        return ""
    return "< 0.001" if p_value < 0.001 else f"{p_value:.3f}"


def strict_json(value: Any) -> Any:
    """`value` with NaN and infinities as null: JSON has no such numbers."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list):
        return [strict_json(item) for item in value]
    return value


def corrected_p_values(deltas: list[Delta | None]) -> list[float | None]:
    """Each configuration's paired p-value against its baseline, Holm-corrected over the
    configurations that have one."""
    raw = [delta.raw_p_value if delta is not None else None for delta in deltas]
    tested = [index for index, p_value in enumerate(raw) if p_value is not None]
    adjusted = holm([raw[index] for index in tested])  # type: ignore[misc]
    corrected: list[float | None] = [None] * len(deltas)
    for index, p_value in zip(tested, adjusted, strict=True):
        corrected[index] = p_value
    return corrected


class Report:
    """The runs under `root` grouped into configurations with their Δm, the metrics and
    overrides to show, and names for the runs."""

    def __init__(
        self,
        root: Path,
        patterns: list[str],
        delta_m_keys: list[str] | None = None,
        out: Path | None = None,
        groups: int | None = None,
    ):
        self.root = root
        self.groups = groups
        self.out = out or root  # where the report goes: its links are relative to it
        self.runs = find_runs(root)
        self.metrics = choose_metrics(self.runs, patterns)
        self.delta_m_keys = delta_m_keys or []
        check_delta_m_keys(self.delta_m_keys, self.runs)
        self.keys = varying_keys(self.runs)
        self.headers = [metric_header(key, self.runs) for key in self.metrics]
        self.configs = configurations(self.runs)
        single_task = [config for config in self.configs if config.single_task]
        self.has_baselines = bool(single_task)
        # Per configuration: its Δm, or None for a single-task baseline.
        self.deltas = [
            None if config.single_task else delta_m(config, single_task, self.delta_m_keys)
            for config in self.configs
        ]
        self.p_values = corrected_p_values(self.deltas)
        self.mean_ranks = mean_ranks(self.configs)
        self.ranks = self.rank_configurations()
        self.fronts = scalarization_fronts(self.configs)
        self.fronts_of = [self.fronts.get(grid_key(config)) for config in self.configs]
        # Per configuration: whether the scalarization front dominates it; None without one.
        self.dominated = [
            front.dominated(config) if front else None
            for config, front in zip(self.configs, self.fronts_of, strict=True)
        ]
        self.affinities = [config_affinity(config) for config in self.configs]
        if groups is not None and not any(self.affinities):
            raise UserError(
                f"groups={groups} splits tasks by their affinity, but no run under {root} "
                "measured it; train with trainer.task_affinity=true"
            )
        for config, affinity in zip(self.configs, self.affinities, strict=True):
            if groups is not None and affinity is not None and groups > len(affinity[0]):
                print(
                    f"mtlrun: warning: groups={groups} is more than the {len(affinity[0])} "
                    f"tasks of {config.name}, and no choice needs more groups than tasks: "
                    f"its choice is of at most {len(affinity[0])}",
                    file=sys.stderr,
                )

    def rank_configurations(self) -> list[int | None]:
        """1 = best: by Δm (higher first) when there are single-task baselines, the baselines
        and configurations without a Δm unranked; else by mean rank (lower first)."""
        if self.has_baselines:
            scores = [
                -delta.value.mean if delta is not None and delta.value is not None else None
                for delta in self.deltas
            ]
        else:
            scores = list(self.mean_ranks)
        scores = [score if score is not None and math.isfinite(score) else None for score in scores]
        ranked = [score for score in scores if score is not None]
        # Ties share the best place: 1, 1, 3.
        return [
            None if score is None else 1 + sum(other < score for other in ranked)
            for score in scores
        ]

    def url(self, path: Path) -> str:
        return quote(Path(os.path.relpath(path, self.out)).as_posix())

    def name(self, run: Run) -> str:
        where = run.path.relative_to(self.root).as_posix()
        return run.name if where == "." else where

    def label(self, run: Run) -> str:
        settings = " ".join(
            f"{key}={run.overrides[key]}" for key in self.keys if key in run.overrides
        )
        return f"{self.name(run)}: {settings}" if settings else self.name(run)

    def runs_table(self) -> Table:
        show_status = any(run.status != "completed" for run in self.runs)
        rows = [
            [
                self.name(run),
                *(run.overrides.get(key, "") for key in self.keys),
                *(format_value(run.metrics[m]) if m in run.metrics else "" for m in self.metrics),
                seconds(run.seconds) if run.seconds is not None else "",
                *([run.status] if show_status else []),
            ]
            for run in self.runs
        ]
        first = 1 + len(self.keys)
        return Table(
            "Runs: final test metrics (↓ lower is better, ↑ higher is better)",
            ["run", *self.keys, *self.headers, "time (s)", *(["status"] if show_status else [])],
            rows,
            numeric=set(range(first, first + len(self.metrics) + 1)),
        )

    def configurations_table(self) -> Table:
        """One row per configuration; with single-task runs, Δm and its test against the
        baseline come first (the corrected p-value, the finding, the baseline, how Δm was
        computed); then whether the scalarization front dominates it, when there is a front;
        then the rank, the mean rank over the tasks' primary metrics, the metrics, the time."""
        keys = [key for key in self.keys if key != "seed"]
        has_front = any(front is not None for front in self.fronts_of)
        rows = []
        for i, (config, delta) in enumerate(zip(self.configs, self.deltas, strict=True)):
            comparison = []
            if self.has_baselines:
                baseline = delta.baseline.name if delta and delta.baseline else ""
                comparison = [
                    format_delta(delta),
                    format_p_value(self.p_values[i]),
                    self.difference(i) or "",
                    baseline,
                    delta.method if delta else "",
                ]
            rank, mean_rank = self.ranks[i], self.mean_ranks[i]
            rows.append(
                [
                    config.name,
                    *(config.overrides.get(key, "") for key in keys),
                    str(len(config.runs)),
                    *comparison,
                    *([self.front_cell(i)] if has_front else []),
                    "" if rank is None else str(rank),
                    "" if mean_rank is None else f"{mean_rank:.2f}",
                    *(format_stat(config.stat(metric)) for metric in self.metrics),
                    format_stat(config.seconds_per_epoch(), seconds),
                    format_stat(config.seconds(), seconds),
                ]
            )
        # Each column with whether it is numeric (right-aligned).
        columns = [
            ("config", False),
            *((key, False) for key in keys),
            ("runs", True),
            *(
                [
                    ("Δm (%)", True),
                    ("p (Holm)", True),
                    ("vs baseline", False),
                    ("baseline", False),
                    ("Δm computed", False),
                ]
                if self.has_baselines
                else []
            ),
            *([("scalarization front", False)] if has_front else []),
            ("rank", True),
            ("MR", True),
            *((header, True) for header in self.headers),
            ("s / epoch", True),
            ("time (s)", True),
        ]
        return Table(
            "Configurations: mean ± the half-width of its 95 % t interval over seeds; rank 1 is "
            "the best "
            + ("Δm" if self.has_baselines else "mean rank (MR, over the tasks' primary metrics)"),
            [name for name, _ in columns],
            rows,
            numeric={index for index, (_, numeric) in enumerate(columns) if numeric},
        )

    def difference(self, index: int) -> str | None:
        """What the corrected test against the baseline finds (inference.verdict)."""
        delta = self.deltas[index]
        if delta is None or delta.value is None:
            return None
        return verdict(delta.value.mean, self.p_values[index])

    def front_cell(self, index: int) -> str:
        dominated = self.dominated[index]
        if dominated is None:
            return ""
        if self.fronts_of[index] is not None and is_grid_point(self.configs[index]):
            return "dominated" if dominated else "on the front"
        return "dominated" if dominated else "not dominated"

    def as_json(self) -> dict[str, Any]:
        """report.json: every configuration with its metrics over seeds (mean, std, n, 95 %
        interval), its Δm with its test against the baseline, and the front's verdict."""
        rows = []
        for config, delta in zip(self.configs, self.deltas, strict=True):
            metrics = dict.fromkeys(key for run in config.runs for key in run.metrics)
            stats = {key: config.stat(key) for key in metrics}
            known = next((run for run in config.measured if run.knows_directions), None)
            per_epoch = config.seconds_per_epoch()
            rows.append(
                {
                    "config": config.name,
                    "overrides": {
                        key: setting
                        for key, setting in config.overrides.items()
                        if key in self.keys
                    },
                    "sharing": config.first.config.get("sharing", {}).get("name"),
                    "weighting": config.first.config.get("weighting", {}).get("name"),
                    "runs": [run.path.relative_to(self.root).as_posix() for run in config.runs],
                    "seeds": config.seeds,
                    "metrics": {key: asdict(stat) for key, stat in stats.items() if stat},
                    "primary_metrics": known.primary_metrics if known else None,
                    "delta_m": asdict(delta.value) | {"paired": delta.paired_seeds is not None}
                    if delta is not None and delta.value is not None
                    else None,
                    "delta_m_metrics": delta.terms
                    if delta is not None and delta.value is not None
                    else None,
                    "delta_m_reason": "single-task baseline" if delta is None else delta.reason,
                    "baseline": delta.baseline.name if delta and delta.baseline else None,
                    "p_value": self.p_values[len(rows)],
                    "difference": self.difference(len(rows)),
                    "is_baseline": config.single_task,
                    "dominated_by_front": self.dominated[len(rows)],
                    "task_weights": task_weights(config) if is_grid_point(config) else None,
                    "affinity": self.affinity_json(len(rows)),
                    "rank": self.ranks[len(rows)],
                    "mean_rank": self.mean_ranks[len(rows)],
                    "seconds_per_epoch": asdict(per_epoch) if per_epoch else None,
                }
            )
        return {
            "convention": CONVENTION,
            "sign": SIGN,
            "baseline_rule": MATCHING,
            "test": TEST,
            "front_rule": RULE,
            "rows": rows,
        }

    def suggested_groups(self, index: int, disjoint: bool = False):
        """TAG's choice of at most `groups=k` groups (overlap allowed), or with `disjoint` the
        best choice that `sharing=grouped` can train; None without groups=k."""
        affinity = self.affinities[index]
        if affinity is None or self.groups is None:
            return None
        return best_groups(*affinity, self.most_groups(index), disjoint=disjoint)

    def most_groups(self, index: int) -> int:
        """`groups=k`, or the number of tasks where k is more (the choice is the same)."""
        assert self.groups is not None
        return min(self.groups, len(self.affinities[index][0]))

    def affinity_json(self, index: int) -> dict[str, Any] | None:
        affinity = self.affinities[index]
        if affinity is None:
            return None
        tasks, matrix = affinity
        suggested = self.suggested_groups(index)
        disjoint = self.suggested_groups(index, disjoint=True)
        return {
            "tasks": tasks,
            "matrix": matrix,
            "groups": suggested[0] if suggested else None,
            "score": suggested[1] if suggested else None,
            "served_by": serving_groups(tasks, matrix, suggested[0]) if suggested else None,
            "disjoint_groups": disjoint[0] if disjoint else None,
            "disjoint_score": disjoint[1] if disjoint else None,
        }

    def front_blocks(self) -> list[Block]:
        """Per scalarization front: the rule, and one figure per pair of tasks with the grid,
        the front and every configuration compared with it."""
        if not self.fronts:
            return []
        blocks: list[Block] = [Heading("Scalarization front"), Text(RULE)]
        headers = dict(zip(self.metrics, self.headers, strict=True))
        for number, front in enumerate(self.fronts.values(), 1):
            others = [
                (self.config_label(config), config)
                for config, its_front in zip(self.configs, self.fronts_of, strict=True)
                if its_front is front and not is_grid_point(config)
            ]
            prefix = "front_" if len(self.fronts) == 1 else f"front{number}_"
            paths = front_figures(front, others, headers, self.out / FILES, prefix)
            grid = ", ".join(config.name for config in front.grid)
            members = ", ".join(config.name for config in front.members)
            blocks += [
                Text(f"Front of {len(front.grid)} grid points ({grid}): {members} on it."),
                Images(
                    "the scalarization front per pair of tasks",
                    [self.url(p) for p in paths],
                    plots=True,
                ),  # fmt: skip
            ]
        return blocks

    def config_label(self, config: Configuration) -> str:
        """`c3: method=hard_pcgrad`: the configuration and the overrides that set it apart (its
        sharing and weighting where it has none)."""
        keys = [key for key in self.keys if key != "seed" and key in config.overrides]
        settings = " ".join(f"{key}={config.overrides[key]}" for key in keys)
        if not settings:  # the defaults: say which method they are
            chosen = config.first.config
            settings = " ".join(
                f"{part}={chosen.get(part, {}).get('name')}" for part in ("sharing", "weighting")
            )
        return f"{config.name}: {settings}"

    def affinity_blocks(self) -> list[Block]:
        """Per configuration that measured it: the affinity matrix averaged over training (and
        its runs) as a table and a heatmap, and with groups=k TAG's choice of groups."""
        if not any(self.affinities):
            return []
        blocks: list[Block] = [
            Heading("Task affinity"),
            Text(
                "Z(i→j) = 1 − L_j after a step on task i's loss alone / L_j before (Fifty et "
                "al. 2021, TAG), on the shared parameters, averaged over the measured steps of "
                "the whole training (their Algorithm 1) and the configuration's runs; positive: "
                "a step on i helps j."
            ),
        ]
        for index, (config, affinity) in enumerate(zip(self.configs, self.affinities, strict=True)):
            if affinity is None:
                continue
            tasks, matrix = affinity
            rows = [
                [source, *("" if v is None else f"{v:.3g}" for v in row)]
                for source, row in zip(tasks, matrix, strict=True)
            ]
            blocks.append(
                Table(
                    f"{config.name}: Z(i→j), rows i",
                    ["i \\ j", *tasks],
                    rows,
                    set(range(1, len(tasks) + 1)),
                )
            )
            path = self.out / FILES / f"affinity_{config.name}.png"
            save_heatmap(tasks, matrix, f"{config.name}: Z(i→j)", path)
            blocks.append(Images(f"{config.name}: task affinity", [self.url(path)], plots=True))
            blocks += self.grouping_texts(index, config.name)
        return blocks

    def grouping_texts(self, index: int, name: str) -> list[Block]:
        """TAG's choice of groups and, when they overlap, the best choice sharing=grouped trains."""
        suggested = self.suggested_groups(index, disjoint=False)
        if not suggested:
            return []
        tasks, matrix = self.affinities[index]
        groups, score = suggested
        served = serving_groups(tasks, matrix, groups)
        text = (
            f"{name}: TAG's choice of at most {self.most_groups(index)} groups is "
            f"{as_override(groups)} "
            f"(mean affinity onto each task from the group that serves it: {score:.3g}; "
        )
        text += ", ".join(
            f"{task} ← {as_override([group])[1:-1]}" for task, group in served.items()
        )
        disjoint, disjoint_score = self.suggested_groups(index, disjoint=True)
        if disjoint == groups:
            text += f"); train it with sharing=grouped 'sharing.groups={as_override(groups)}'."
            return [Text(text)]
        text += (
            "). Its groups overlap, and sharing=grouped trains each task in one group: the best "
            f"choice without overlap is {as_override(disjoint)} ({disjoint_score:.3g}); train it "
            f"with sharing=grouped 'sharing.groups={as_override(disjoint)}'."
        )
        return [Text(text)]

    def blocks(self) -> list[Block]:
        """The report's content; the learning curves are written on the way."""
        blocks: list[Block] = [
            Text(f"{len(self.runs)} runs under {self.root}."),
            self.runs_table(),
        ]
        if self.has_baselines or len(self.configs) < len(self.runs):
            blocks.append(self.configurations_table())
        if self.has_baselines:
            blocks += [Text(CONVENTION), Text(MATCHING), Text(TEST)]
            if self.delta_m_keys:
                blocks.append(
                    Text(
                        f"Δm metrics chosen with delta_m=: {', '.join(self.delta_m_keys)}; "
                        "the other tasks count through their primary metric."
                    )
                )
            blocks += [
                Text(f"Δm of {config.name} is undefined: {delta.reason}.")
                for config, delta in zip(self.configs, self.deltas, strict=True)
                if delta is not None and delta.value is None
            ]
        blocks += self.front_blocks()
        blocks += self.affinity_blocks()
        curves = learning_curves(
            self.runs, [self.label(run) for run in self.runs], self.metrics, self.out / FILES
        )
        if curves:
            blocks += [
                Heading("Learning curves"),
                Images("validation metrics per epoch", [self.url(p) for p in curves], plots=True),
            ]
        grids = [(run, run.last_images()) for run in self.runs]
        if any(paths for _, paths in grids):
            blocks.append(Heading("Last image grids"))
            blocks += [
                Images(self.label(run), [self.url(path) for path in paths])
                for run, paths in grids
                if paths
            ]
        return blocks


def config_affinity(config: Configuration) -> tuple[list[str], list[list[float | None]]] | None:
    """The tasks and the mean over a configuration's runs of their affinity matrices averaged
    over training; None when none of its runs measured it."""
    matrices, tasks = [], []
    for run in config.runs:
        measured = [r for r in run.records if any(k.startswith(AFFINITY) for k in r)]
        if not measured:
            continue
        keys = [k for k in measured[-1] if k.startswith(AFFINITY)]
        tasks = list(dict.fromkeys(part for k in keys for part in k.split("/")[2:4]))
        matrices.append(training_affinity(measured, tasks))
    if not matrices:
        return None
    return tasks, mean_matrix(matrices)


def write_report(
    root: Path,
    patterns: list[str],
    delta_m_keys: list[str] | None = None,
    out: Path | None = None,
    groups: int | None = None,
) -> list[Block]:
    """Write report_files/*.png, report.md, report.html and report.json into `out` (default:
    DIR); return the blocks, for the terminal."""
    out = out or root
    report = Report(root, patterns, delta_m_keys, out, groups)
    blocks = report.blocks()
    title = f"mtlrun report: {root.resolve().name}"
    numbers = strict_json(report.as_json())
    for name, text in (
        ("report.md", to_markdown(title, blocks)),
        ("report.html", to_html(title, blocks)),
        ("report.json", json.dumps(numbers, indent=2, ensure_ascii=False, allow_nan=False)),
    ):
        write_atomic(out / name, lambda tmp, text=text: Path(tmp).write_text(text, "utf-8"))
    return blocks
