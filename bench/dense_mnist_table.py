"""Dense MNIST (`+experiment=dense_mnist`: a small SegNet, per-pixel segmentation, depth and
normals) for every method of the catalogue (configs/method, `+method=NAME`): each task's test
metrics (mean ± the half-width of their 95 % t interval over seeds), Δm against single_task
over the tasks' primary metrics (mtlrun's convention: mIoU, depth abs_err, normal mean angle)
with paired t-tests over seeds (Holm-corrected over the methods), Δm over all nine metrics
(LibMTL's and MTAN's convention for NYUv2), the rank by Δm and seconds per epoch. Each run is
its own process; the table goes into BENCHMARKS.md between the dense_mnist markers.

    python bench/dense_mnist_table.py [--seeds 0,1,2] [--jobs 2] [--only hard_equal,mtan_equal]
        [--no-write] [--work DIR [--read-only]] [overrides...]

--jobs, --work, --read-only and the record of finished cells (bench/dense_mnist_cells.jsonl,
a cell per line with the commit its run trained from, read instead of training again) work as
in bench/multimnist_table.py, whose docstring says how.
"""

import statistics
from pathlib import Path

from benchmarks_md import publish
from method_table import (
    Comparison,
    mean_interval,
    method_overrides,
    methods,
    options,
    seconds,
    sit,
)

CELLS = Path(__file__).resolve().parent / "dense_mnist_cells.jsonl"
# Each task's test metrics in the table, with their direction (LibMTL's nine for NYUv2).
METRICS = {
    "segmentation/miou": "max",
    "segmentation/pixel_acc": "max",
    "depth/abs_err": "min",
    "depth/rel_err": "min",
    "normal/mean_angle": "min",
    "normal/median_angle": "min",
    "normal/within_11.25": "max",
    "normal/within_22.5": "max",
    "normal/within_30": "max",
}
PRIMARY = ["segmentation/miou", "depth/abs_err", "normal/mean_angle"]


def arguments_of(name: str, seed: int) -> list[str]:
    return [
        "+experiment=dense_mnist",
        *method_overrides(name),
        f"seed={seed}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_dense_{name}",
    ]


def numbers_of(metrics: dict) -> dict:
    return {key: metrics[f"test/{key}"] for key in METRICS}


def relative_gain(cell: dict, baseline: dict, keys: list[str]) -> float:
    """Δm in %: the mean over `keys` of the relative gain over the baseline, signed by each
    metric's direction (positive = better than the baseline)."""
    return 100 * statistics.mean(
        (1 if METRICS[key] == "max" else -1) * (cell[key] - baseline[key]) / abs(baseline[key])
        for key in keys
    )


def primary_delta_m(cell: dict, baseline: dict) -> float:
    return relative_gain(cell, baseline, PRIMARY)


def libmtl_delta_m(cell: dict, baseline: dict) -> float:
    return relative_gain(cell, baseline, list(METRICS))


def metric_cell(runs: list[dict], key: str) -> str:
    """mIoU and the shares in %, angles in degrees (2 decimals); depth errors as they are (3)."""
    scale = 100 if METRICS[key] == "max" else 1
    digits = 3 if key.startswith("depth/") else 2
    return mean_interval([run[key] * scale for run in runs], digits=digits)


def main() -> None:
    args = options(__doc__.splitlines()[0]).parse_args()
    names = args.only.split(",") if args.only else methods()
    sitting = sit(args, "dense_mnist_table.py", CELLS, names, arguments_of, numbers_of)
    lines = [
        f"{sitting.opening} Every run: `mtlrun train +experiment=dense_mnist +method=NAME "
        f"seed=S`. Δm over the primary metrics (mIoU, depth abs err, normal mean angle), with "
        f"the paired t-test against single_task; Δm (LibMTL) over all nine. "
        f"Commits the runs trained from: {sitting.commits}.",
        "",
        "| rank | method | runs | mIoU % | pixel acc % | depth abs err | depth rel err | "
        "normal mean ° | normal median ° | < 11.25° % | < 22.5° % | < 30° % | Δm % | "
        "p vs single_task | Δm % (LibMTL) | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = sitting.rows
    primary = Comparison("single_task", rows, primary_delta_m)
    libmtl = Comparison("single_task", rows, libmtl_delta_m)
    ranked = sorted(
        primary.per_seed, key=lambda name: statistics.mean(primary.per_seed[name]), reverse=True
    )
    for name in names:
        if name not in rows:
            failed, why = sitting.missing(name)
            lines.append(f"| | {name} | {failed} | {why} |" + " |" * 12)
            continue
        runs = list(rows[name].values())
        rank = ranked.index(name) + 1 if name in ranked else ""
        metrics = " | ".join(metric_cell(runs, key) for key in METRICS)
        lines.append(
            f"| {rank} | {name} | {len(runs)} | {metrics} | {primary.gain(name)} | "
            f"{primary.test(name)} | {libmtl.gain(name)} | {seconds(runs)} |"
        )
    publish("dense_mnist", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
