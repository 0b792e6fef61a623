"""`mtlrun report DIR`: the runs under DIR compared in tables (seeds aggregated, Δm against
single-task baselines), learning curves and the last image grids, written to DIR/report.md and
DIR/report.html, with the figures in DIR/report_files/."""

from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from mtlrun.report.compare import Configuration, Stat, choose_metrics, configurations, varying_keys
from mtlrun.report.delta import CONVENTION, MATCHING, Delta, delta_m, direction
from mtlrun.report.document import Block, Heading, Images, Table, Text, to_html, to_markdown
from mtlrun.report.figures import learning_curves
from mtlrun.report.runs import Run, find_runs
from mtlrun.runfolder import write_atomic
from mtlrun.terminal import format_value

FILES = "report_files"


def seconds(value: float) -> str:
    return f"{value:.1f}"


def format_stat(stat: Stat | None, fmt: Callable[[float], str] = format_value) -> str:
    if stat is None:
        return ""
    return fmt(stat.mean) if stat.std is None else f"{fmt(stat.mean)} ± {fmt(stat.std)}"


def metric_header(key: str, runs: list[Run]) -> str:
    """`digit/acc ↑`: the key without `test/`, with an arrow for the better direction."""
    way = next((direction(run, key) for run in runs if key in run.metrics), None)
    return key.removeprefix("test/") + {"min": " ↓", "max": " ↑"}.get(way or "", "")


class Report:
    """The runs under `root`, the metrics and overrides to show, and names for the runs."""

    def __init__(self, root: Path, patterns: list[str]) -> None:
        self.root = root
        self.runs = find_runs(root)
        self.metrics = choose_metrics(self.runs, patterns)
        self.keys = varying_keys(self.runs)
        self.headers = [metric_header(key, self.runs) for key in self.metrics]

    def url(self, path: Path) -> str:
        return quote(path.relative_to(self.root).as_posix())

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

    def configurations_table(
        self, configs: list[Configuration], deltas: list[Delta | None] | None
    ) -> Table:
        """One row per configuration; Δm and its baseline come first when there are
        single-task runs (`deltas`: a configuration's Δm, or None for a baseline)."""
        keys = [key for key in self.keys if key != "seed"]
        names = [f"c{index}" for index in range(1, len(configs) + 1)]
        rows = []
        for index, config in enumerate(configs):
            comparison = []
            if deltas is not None:
                delta = deltas[index]
                if delta is None:
                    comparison = ["baseline", ""]
                else:
                    value = "—" if delta.value is None else f"{delta.value:+.2f}"
                    used = [names[configs.index(b)] for b in delta.baselines]
                    comparison = [value, ", ".join(used)]
            rows.append(
                [
                    names[index],
                    *(config.overrides.get(key, "") for key in keys),
                    str(len(config.runs)),
                    *comparison,
                    *(format_stat(config.stat(metric)) for metric in self.metrics),
                    format_stat(config.seconds(), seconds),
                ]
            )
        comparison_columns = ["Δm (%)", "baseline"] if deltas is not None else []
        first = 1 + len(keys)
        numeric = {first, first + 1} if deltas is not None else {first}
        metrics_start = first + 1 + len(comparison_columns)
        return Table(
            "Configurations: mean ± sample standard deviation over seeds",
            ["config", *keys, "runs", *comparison_columns, *self.headers, "time (s)"],
            rows,
            numeric=numeric | set(range(metrics_start, metrics_start + len(self.metrics) + 1)),
        )

    def blocks(self) -> list[Block]:
        """The report's content; the learning curves are written on the way."""
        blocks: list[Block] = [
            Text(f"{len(self.runs)} runs under {self.root}."),
            self.runs_table(),
        ]
        configs = configurations(self.runs)
        single_task = [config for config in configs if config.first.single_task]
        deltas = None  # per configuration: its Δm, or None for a single-task baseline
        if single_task:
            deltas = [
                None if config.first.single_task else delta_m(config, single_task, self.metrics)
                for config in configs
            ]
        if deltas is not None or len(configs) < len(self.runs):
            blocks.append(self.configurations_table(configs, deltas))
        if deltas is not None:
            blocks += [Text(CONVENTION), Text(MATCHING)]
            blocks += [
                Text(f"Δm of c{index} is undefined: {delta.reason}.")
                for index, delta in enumerate(deltas, start=1)
                if delta is not None and delta.value is None
            ]
        curves = learning_curves(
            self.runs, [self.label(run) for run in self.runs], self.metrics, self.root / FILES
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


def write_report(root: Path, patterns: list[str]) -> list[Block]:
    """Write DIR/report_files/*.png, DIR/report.md and DIR/report.html; return the blocks, for
    the terminal."""
    report = Report(root, patterns)
    blocks = report.blocks()
    title = f"mtlrun report: {root.resolve().name}"
    for name, text in (
        ("report.md", to_markdown(title, blocks)),
        ("report.html", to_html(title, blocks)),
    ):
        write_atomic(root / name, lambda tmp, text=text: Path(tmp).write_text(text, "utf-8"))
    return blocks
