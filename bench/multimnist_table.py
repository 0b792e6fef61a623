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

import statistics
import sys
from pathlib import Path

from benchmarks_md import publish
from method_table import (
    FRONT,
    Comparison,
    half_width,
    mean_interval,
    method_overrides,
    methods,
    options,
    seconds,
    sit,
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


def arguments_of(name: str, seed: int) -> list[str]:
    return [
        "+experiment=multimnist",
        *RECIPE,
        *method_overrides(name),
        f"seed={seed}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_{name.partition('@')[0]}",
    ]


def numbers_of(metrics: dict) -> dict:
    """Each digit's test accuracy in %."""
    return {
        "left": metrics["test/left_digit/acc"] * 100,
        "right": metrics["test/right_digit/acc"] * 100,
    }


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
    parser = options(__doc__.splitlines()[0])
    parser.add_argument(
        "--no-front", action="store_true", help="leave out the scalarization front's 9 points"
    )
    parser.add_argument("--figure", type=Path, help="draw the front and every method into PNG")
    args = parser.parse_args()
    names = args.only.split(",") if args.only else methods()
    if not args.no_front:
        names += [name for name in GRID if name not in names]
    sitting = sit(args, "multimnist_table.py", CELLS, names, arguments_of, numbers_of)
    lines = [
        f"{sitting.opening} Every run: `mtlrun train +experiment=multimnist +method=NAME "
        f"{' '.join(RECIPE)} seed=S`; the front's: `+method=scalarization weighting.point=K`. "
        f"Commits the runs trained from: {sitting.commits}.",
        "",
        "| rank | method | runs | left acc % | right acc % | Δm % | p vs single_task | "
        "Δm vs hard_equal % | p vs hard_equal | front | s / epoch | "
        "Sener & Koltun (left / right) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sitting.rows
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
            failed, why = sitting.missing(name)
            lines.append(f"| | {label} | {failed} | {why} | | | | | | | | {paper} |")
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
    publish("multimnist", lines, write=not args.no_write)
    if args.figure:  # after the table: a figure drawn again would make the tree uncommitted
        draw_figure(rows, means, grid, args.figure)


if __name__ == "__main__":
    main()
