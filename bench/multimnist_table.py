"""MultiMNIST as Sener & Koltun (2018) train it: test accuracy (mean ± sample std over seeds) and
seconds per epoch for each sharing strategy (with equal weighting) and each weighting method
(with hard sharing), beside the paper's published figures where it reports the method. Every
run uses the `multimnist` experiment plus the paper's recipe options (RECIPE). Each run is its own
process; the table goes into BENCHMARKS.md between the multimnist markers.

    python bench/multimnist_table.py [--seeds 0,1,2] [--jobs 2] [--only hard/equal,soft/equal]
        [--no-write] [--work DIR] [overrides...]

With --jobs N, N runs go at once, each on one thread (OMP_NUM_THREADS=1): on a small CPU that
trains more runs an hour than one run on every core, and the seconds per epoch are then those
of a one-thread run.

With --work DIR, the runs go into DIR's outputs/ (a fresh temporary folder otherwise), and a cell
whose completed run is already there, made by the same command, is read instead of trained
again: a table stopped part-way is finished by running the same command with the same --work.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from benchmarks_md import measured_on, publish, require_data

# concat and two_stage train autoencoders on reconstruction; MultiMNIST's tasks are the two
# digits only, so they are not in this table.
STRATEGIES = ["hard", "soft", "cross_stitch", "single_task"]
WEIGHTINGS = [
    "equal",
    "uncertainty",
    "dwa",
    "gradnorm",
    "pcgrad",
    "mgda",
    "mgda_ub",
    "cagrad",
    "upgrad",
    "nashmtl",
]
CONFIGURATIONS = [f"{s}/equal" for s in STRATEGIES] + [f"hard/{w}" for w in WEIGHTINGS[1:]]
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
    "hard/equal": ("uniform scaling", 96.46, 94.99),
    "single_task/equal": ("single task", 97.23, 95.90),
    "hard/mgda_ub": ("MGDA-UB", 97.26, 95.90),
}


def run(sharing: str, weighting: str, seed: int, extra: list[str], work: Path, env: dict) -> dict:
    command = [
        sys.executable,
        "-m",
        "mtlrun",
        "train",
        "+experiment=multimnist",
        *RECIPE,
        f"sharing={sharing}",
        f"weighting={weighting}",
        f"seed={seed}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_{sharing}_{weighting}",
        *extra,
    ]
    run_dir = finished_run(work, " ".join(["mtlrun", *command[3:]]))
    if run_dir is None:
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit status {result.returncode}"}
        run_dir = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {
        "left": summary["metrics"]["test/left_digit/acc"] * 100,
        "right": summary["metrics"]["test/right_digit/acc"] * 100,
        "epoch_s": statistics.mean(r["seconds"] for r in records if r["split"] == "train"),
    }


def finished_run(work: Path, command: str) -> Path | None:
    """A completed run under `work` that `command` made, if there is one."""
    for meta_file in sorted(work.glob("outputs/runs/*/*/meta.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("command") == command and meta.get("status") == "completed":
            return meta_file.parent
    return None


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def run_cells(pairs: list[str], seeds: list[int], jobs: int, run_one) -> dict:
    """Every (pair, seed) cell, `jobs` at a time, seed by seed (every pair's first seed before
    any second one), each printed as it finishes. Ctrl-C (to the whole process group, so the
    runs under way stop too) keeps what has finished, so a table can be written from part of
    the seeds."""
    stopping = False

    def cell(pair: str, seed: int) -> dict | None:
        return None if stopping else run_one(pair, seed)

    results = {}
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {pool.submit(cell, pair, seed): (pair, seed) for seed in seeds for pair in pairs}
    try:
        for future in as_completed(futures):
            row = future.result()
            if row is not None:
                results[futures[future]] = row
                print(*futures[future], json.dumps(row), flush=True)
    except KeyboardInterrupt:
        stopping = True
        pool.shutdown(wait=True, cancel_futures=True)  # the runs the Ctrl-C stopped are not kept
        print(f"interrupted: {len(results)} of {len(futures)} runs finished", flush=True)
    pool.shutdown()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one thread each")
    parser.add_argument("--only", help="comma-separated sharing/weighting pairs")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--work", type=Path, help="folder of the runs; finished ones are reused")
    parser.add_argument("overrides", nargs="*", help="extra mtlrun overrides for every run")
    args = parser.parse_args()
    require_data()
    seeds = [int(seed) for seed in args.seeds.split(",")]
    pairs = args.only.split(",") if args.only else CONFIGURATIONS
    work = args.work or Path(tempfile.mkdtemp(prefix="mtlrun_multimnist_"))
    work.mkdir(parents=True, exist_ok=True)
    command = "python bench/multimnist_table.py" + "".join(f" {o}" for o in args.overrides)
    if args.seeds != "0,1,2":
        command += f" --seeds {args.seeds}"
    env = dict(os.environ)
    threads = "every core"
    if args.jobs > 1:
        command += f" --jobs {args.jobs}"
        env["OMP_NUM_THREADS"] = "1"
        threads = f"{args.jobs} runs at once, one thread each"
    results = run_cells(
        pairs,
        seeds,
        args.jobs,
        lambda pair, seed: run(*pair.split("/"), seed, args.overrides, work, env),
    )
    done = sorted({seed for _, seed in results})
    lines = [
        f"{measured_on()}, device=cpu, {threads}, seeds {','.join(map(str, done))} "
        f"(mean ± sample std over the runs column). Command: `{command}`. Every run: "
        f"`+experiment=multimnist {' '.join(RECIPE)}`.",
        "",
        "| sharing | weighting | runs | left acc % | right acc % | s / epoch | "
        "Sener & Koltun (left / right) |",
        "|---|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        sharing, weighting = pair.split("/")
        rows = [results[pair, seed] for seed in seeds if (pair, seed) in results]
        published = PUBLISHED.get(pair)
        paper = f"{published[1]:.2f} / {published[2]:.2f} ({published[0]})" if published else ""
        failed = [row["error"] for row in rows if "error" in row]
        if not rows or failed:
            why = f"failed: {failed[0]}" if failed else "not run"
            lines.append(f"| {sharing} | {weighting} | {len(rows)} | {why} | | | {paper} |")
            continue
        lines.append(
            f"| {sharing} | {weighting} | {len(rows)} | {mean_std([r['left'] for r in rows])} | "
            f"{mean_std([r['right'] for r in rows])} | "
            f"{statistics.mean(r['epoch_s'] for r in rows):.1f} | {paper} |"
        )
    publish("multimnist", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
