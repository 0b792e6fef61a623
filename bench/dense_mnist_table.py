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
    Comparison,
    Record,
    commits,
    finished_run,
    mean_interval,
    method_overrides,
    methods,
    run_cells,
    seconds,
    uncommitted,
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
        "+experiment=dense_mnist",
        *method_overrides(name),
        f"seed={seed}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_dense_{name}",
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
    numbers = {key: summary["metrics"][f"test/{key}"] for key in METRICS}
    numbers["epoch_s"] = statistics.mean(r["seconds"] for r in records if r["split"] == "train")
    record.add(command_line, numbers, run_dir)
    return record.get(command_line) or numbers  # recorded: with its commit, for the caption


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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one thread each")
    parser.add_argument("--only", help="comma-separated method names (configs/method)")
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
    work = args.work or Path(tempfile.mkdtemp(prefix="mtlrun_dense_mnist_"))
    work.mkdir(parents=True, exist_ok=True)
    command = "python bench/dense_mnist_table.py" + "".join(f" {o}" for o in args.overrides)
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
        f"`{command}`. Every run: `mtlrun train +experiment=dense_mnist +method=NAME seed=S`. "
        f"Δm over the primary metrics (mIoU, depth abs err, normal mean angle), with the "
        f"paired t-test against single_task; Δm (LibMTL) over all nine. "
        f"Commits the runs trained from: {commits(recorded)}.",
        "",
        "| rank | method | runs | mIoU % | pixel acc % | depth abs err | depth rel err | "
        "normal mean ° | normal median ° | < 11.25° % | < 22.5° % | < 30° % | Δm % | "
        "p vs single_task | Δm % (LibMTL) | s / epoch |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    rows = {
        name: {s: results[name, s] for s in seeds if (name, s) in results}
        for name in names
        if any((name, s) in results for s in seeds)
        and not any("error" in results.get((name, s), {}) for s in seeds)
    }
    primary = Comparison("single_task", rows, primary_delta_m)
    libmtl = Comparison("single_task", rows, libmtl_delta_m)
    ranked = sorted(
        primary.per_seed, key=lambda name: statistics.mean(primary.per_seed[name]), reverse=True
    )
    for name in names:
        if name not in rows:
            failed = [
                cell["error"] for (n, _), cell in results.items() if n == name and "error" in cell
            ]
            why = f"failed: {failed[0]}" if failed else "not run"
            lines.append(f"| | {name} | {len(failed)} | {why} |" + " |" * 12)
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
