"""MultiMNIST as Sener & Koltun (2018) train it, for every method of the catalogue
(configs/method: `+method=NAME` sets sharing and weighting) and the scalarization front (Xin et
al. 2022: `+method=scalarization weighting.point=K`, the 9 fixed weightings (K/8, 1 − K/8)):
test accuracy (mean ± the half-width of its 95 % t interval over seeds), Δm against
single_task and against hard_equal with paired t-tests over seeds (Holm-corrected over the
methods), whether the front dominates each method, the rank by Δm and seconds per epoch, beside
the paper's published figures where it reports the method. Every run uses the `multimnist`
experiment plus the paper's recipe options (RECIPE). Each run is its own process; the table
goes into BENCHMARKS.md between the multimnist markers, and with --figure the front with every
method into a PNG.

    python bench/multimnist_table.py [--seeds 0,1,2] [--jobs 2] [--only hard_equal,soft_equal]
        [--no-front] [--figure PNG] [--no-write] [--work DIR [--read-only]] [overrides...]

With --jobs N, N runs go at once, each on one thread (OMP_NUM_THREADS=1): on a small CPU that
trains more runs an hour than one run on every core, and the seconds per epoch are then those
of a one-thread run.

With --work DIR, the runs go into DIR's outputs/ (a fresh temporary folder otherwise), and a cell
whose completed run is already there, made by the same command, is read instead of trained
again: a table stopped part-way is finished by running the same command with the same --work.
With --read-only as well, the table is written from the finished runs alone (the others are
`not run`), as when a sitting had to stop.

Every finished cell is also recorded in bench/multimnist_cells.jsonl (committed: the whole table
takes longer than one sitting can), with the exact commit its run trained from, and a cell
recorded by the same command on the same machine is read from there instead of trained again, so
the next sitting finishes the table even without the runs. The script refuses to run (unless
--no-write) from a tree with uncommitted changes or untracked files, and does not record a run
whose meta.json names an uncommitted tree (`<commit>-dirty`: the tree changed during the
sitting): a recorded cell is reproducible from its commit alone. The cells are written into the
record when the sitting ends (or is stopped with Ctrl-C), not as each run finishes: a record
changed mid-sitting would itself make the tree uncommitted for every later run. A sitting killed
outright records nothing, and the same command with the same --work records its finished runs.
The table's caption lists the commits its cells ran from. Delete a cell's line to measure it
again (as when its method changes). A cell whose run shared the machine with other work is
marked `"shared_machine": true` by hand there: its accuracies count, its seconds only where a
method has no other run (then marked `*` in the table); one paused part-way has
`"epoch_s": null`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks_md import measured_on, publish, require_data
from method_table import (
    FRONT,
    Comparison,
    Record,
    commits,
    finished_run,
    half_width,
    mean_interval,
    method_overrides,
    methods,
    run_cells,
    seconds,
    uncommitted,
)

from mtlrun.report.front import Point, dominates, draw_front

CELLS = Path(__file__).resolve().parent / "multimnist_cells.jsonl"


GRID = [f"{FRONT}@{point}" for point in range(9)]  # left digit's weight point/8


# The MultiLeNet of Sener & Koltun's code (multi_task/models/multi_lenet.py): Dropout2d on the
# second conv layer, dropout 0.5 in each head before its last layer; MNIST's input
# standardisation (multi_task/datasets.py).
RECIPE = [
    "dataset.normalize=true",
    "backbone.conv_dropout=0.5",
    "tasks.left_digit.dropout=0.5",
    "tasks.right_digit.dropout=0.5",
]
# Sener & Koltun 2018, their MultiMNIST results (test accuracy %, left / right digit).
PUBLISHED = {
    "hard_equal": ("uniform scaling", 96.46, 94.99),
    "single_task": ("single task", 97.23, 95.90),
    "hard_mgda_ub": ("MGDA-UB", 97.26, 95.90),
}


def run(
    name: str, seed: int, extra: list[str], work: Path, env: dict, train: bool, record: Record
) -> dict | None:
    """One cell's numbers: recorded, else from its finished run under `work`, else from a new
    run (None if not `train`)."""
    command = [
        sys.executable,
        "-m",
        "mtlrun",
        "train",
        "+experiment=multimnist",
        *RECIPE,
        *method_overrides(name),
        f"seed={seed}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_{name.partition('@')[0]}",
        *extra,
    ]
    command_line = " ".join(["mtlrun", *command[3:]])
    recorded = record.get(command_line)
    if recorded is not None:
        return recorded
    run_dir = finished_run(work, command_line)
    if run_dir is None and not train:
        return None
    if run_dir is None:
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit status {result.returncode}"}
        run_dir = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    numbers = {
        "left": summary["metrics"]["test/left_digit/acc"] * 100,
        "right": summary["metrics"]["test/right_digit/acc"] * 100,
        "epoch_s": statistics.mean(r["seconds"] for r in records if r["split"] == "train"),
    }
    record.add(command_line, numbers, run_dir)
    return record.get(command_line) or numbers  # recorded: with its commit, for the caption


def delta_m(accuracy: tuple[float, ...], baseline: tuple[float, ...]) -> float:
    """Δm (Maninis et al. 2019) in %: the mean relative gain over single-task, every metric an
    accuracy (higher is better), on the means over seeds."""
    return 100 * statistics.mean((a - b) / b for a, b in zip(accuracy, baseline, strict=True))


def accuracy(cell: dict) -> tuple[float, float]:
    return cell["left"], cell["right"]


def cell_delta_m(cell: dict, baseline: dict) -> float:
    return delta_m(accuracy(cell), accuracy(baseline))


def front_cell(name: str, means: dict[str, list[float]], grid: list[str]) -> str:
    """Whether a grid point beats `name` on both digits' mean accuracy (at least as good on
    both, better on one): `dominated`; else `on the front` for a grid point, `not dominated`
    for a method; empty without a front."""
    if not grid:
        return ""
    if any(dominates(means[point], means[name]) for point in grid if point != name):
        return "dominated"
    return "on the front" if name in grid else "not dominated"


def draw_figure(rows: dict, means: dict, grid: list[str], path: Path) -> None:
    """The front (left against right accuracy) with every method's mean and 95 % intervals."""
    if not grid:
        sys.exit("--figure: no point of the scalarization front has run")
    others = [
        Point(
            name,
            *means[name],
            *(half_width([accuracy(c)[i] for c in rows[name].values()]) for i in (0, 1)),
        )
        for name in rows
        if name not in GRID
    ]
    draw_front(
        [Point(f"{int(name[-1]) / 8:g}", *means[name]) for name in grid],
        others,
        ("left digit acc % ↑", "right digit acc % ↑"),
        ("max", "max"),
        f"MultiMNIST: the front of {len(grid)} fixed weightings (labels: left digit's weight)",
        path,
    )
    print(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one thread each")
    parser.add_argument("--only", help="comma-separated method names (configs/method)")
    parser.add_argument(
        "--no-front", action="store_true", help="leave out the scalarization front's 9 points"
    )
    parser.add_argument("--figure", type=Path, help="draw the front and every method into PNG")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--work", type=Path, help="folder of the runs; finished ones are reused")
    parser.add_argument(
        "--read-only", action="store_true", help="table from --work's finished runs only"
    )
    parser.add_argument("overrides", nargs="*", help="extra mtlrun overrides for every run")
    args = parser.parse_args()
    require_data()
    changes = uncommitted()
    if changes and not args.no_write:
        first = changes.splitlines()[0]
        sys.exit(
            f"uncommitted changes ({first.strip()}, ...): commit them (or run with --no-write) so "
            "that every recorded cell names the commit it ran"
        )
    seeds = [int(seed) for seed in args.seeds.split(",")]
    names = args.only.split(",") if args.only else methods()
    if not args.no_front:
        names += [name for name in GRID if name not in names]
    work = args.work or Path(tempfile.mkdtemp(prefix="mtlrun_multimnist_"))
    work.mkdir(parents=True, exist_ok=True)
    command = "python bench/multimnist_table.py" + "".join(f" {o}" for o in args.overrides)
    if args.seeds != "0,1,2":
        command += f" --seeds {args.seeds}"
    if args.work:
        command += " --work DIR"
    env = dict(os.environ)
    threads = "every core"
    if args.jobs > 1:
        command += f" --jobs {args.jobs}"
        env["OMP_NUM_THREADS"] = "1"
        threads = f"{args.jobs} runs at once, one thread each"
    record = Record(CELLS, recording=not args.no_write)
    results = run_cells(
        names,
        seeds,
        args.jobs,
        lambda name, seed: run(name, seed, args.overrides, work, env, not args.read_only, record),
    )
    record.save()
    done = sorted({seed for _, seed in results})
    dates = sorted({cell["date"] for cell in results.values() if "date" in cell})
    recorded = [cell for cell in results.values() if "git_commit" in cell]
    lines = [
        f"{measured_on(dates)}, device=cpu, {threads}, seeds {','.join(map(str, done))} "
        f"(mean ± the half-width of the 95 % t interval over the runs column). Command: "
        f"`{command}`. Every run: `mtlrun train +experiment=multimnist +method=NAME "
        f"{' '.join(RECIPE)} seed=S`; the front's: `+method=scalarization weighting.point=K`. "
        f"Commits the runs trained from: {commits(recorded)}.",
        "",
        "| rank | method | runs | left acc % | right acc % | Δm % | p vs single_task | "
        "Δm vs hard_equal % | p vs hard_equal | front | s / epoch | "
        "Sener & Koltun (left / right) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = {
        name: {s: results[name, s] for s in seeds if (name, s) in results}
        for name in names
        if any((name, s) in results for s in seeds)
        and not any("error" in results.get((name, s), {}) for s in seeds)
    }
    single_task = Comparison("single_task", rows, cell_delta_m)
    hard_equal = Comparison("hard_equal", rows, cell_delta_m)
    means = {
        name: [statistics.mean(accuracy(cell)[task] for cell in cells.values()) for task in (0, 1)]
        for name, cells in rows.items()
    }
    grid = [name for name in GRID if name in rows]
    ranked = sorted(
        (name for name in single_task.per_seed if name not in grid),
        key=lambda name: statistics.mean(single_task.per_seed[name]),
        reverse=True,
    )
    for name in names:
        published = PUBLISHED.get(name)
        paper = f"{published[1]:.2f} / {published[2]:.2f} ({published[0]})" if published else ""
        label = name if name not in GRID else f"{FRONT} (left weight {int(name[-1]) / 8:g})"
        if name not in rows:
            failed = [
                cell["error"] for (n, _), cell in results.items() if n == name and "error" in cell
            ]
            why = f"failed: {failed[0]}" if failed else "not run"
            lines.append(f"| | {label} | {len(failed)} | {why} | | | | | | | | {paper} |")
            continue
        runs = list(rows[name].values())
        rank = ranked.index(name) + 1 if name in ranked else ""
        front = front_cell(name, means, grid)
        lines.append(
            f"| {rank} | {label} | {len(runs)} | {mean_interval([r['left'] for r in runs])} | "
            f"{mean_interval([r['right'] for r in runs])} | {single_task.gain(name)} | "
            f"{single_task.test(name)} | {hard_equal.gain(name)} | {hard_equal.test(name)} | "
            f"{front} | {seconds(runs)} | {paper} |"
        )
    if args.figure:
        draw_figure(rows, means, grid, args.figure)
    publish("multimnist", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
