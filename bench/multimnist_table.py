"""MultiMNIST as Sener & Koltun (2018) train it, for every method of the catalogue
(configs/method: `+method=NAME` sets sharing and weighting): test accuracy (mean ± sample std
over seeds), Δm against single_task, the rank by Δm and seconds per epoch, beside the paper's
published figures where it reports the method. Every run uses the `multimnist` experiment plus
the paper's recipe options (RECIPE). Each run is its own process; the table goes into
BENCHMARKS.md between the multimnist markers.

    python bench/multimnist_table.py [--seeds 0,1,2] [--jobs 2] [--only hard_equal,soft_equal]
        [--no-write] [--work DIR [--read-only]] [overrides...]

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
sitting): a recorded cell is reproducible from its commit alone. The table's caption lists the
commits its cells ran from. Delete a cell's line to measure it again (as when its method
changes). A cell whose run shared the machine with other work is marked `"shared_machine": true`
by hand there: its accuracies count, its seconds only where a method has no other run (then
marked `*` in the table); one paused part-way has `"epoch_s": null`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from benchmarks_md import machine, measured_on, publish, require_data

CATALOGUE = Path(__file__).resolve().parent.parent / "configs" / "method"
CELLS = Path(__file__).resolve().parent / "multimnist_cells.jsonl"


def methods() -> list[str]:
    """Every option of the `method` group: the baseline first, then the sharing strategies with
    equal weights, then hard sharing with each weighting."""
    names = sorted(path.stem for path in CATALOGUE.glob("*.yaml"))
    weightings = [name for name in names if name.startswith("hard_") and name != "hard_equal"]
    strategies = [name for name in names if name not in weightings and name != "single_task"]
    return ["single_task", *sorted(strategies, key=lambda n: n != "hard_equal"), *weightings]


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


class Record:
    """The finished cells of every sitting, a JSON line each in CELLS, by their command."""

    def __init__(self, path: Path, recording: bool) -> None:
        self.path = path
        self.recording = recording  # False: --no-write, from a tree that may be uncommitted
        self.lock = threading.Lock()  # the cells finish on the pool's threads
        lines = path.read_text().splitlines() if path.exists() else []
        cells = [json.loads(line) for line in lines if line.strip()]
        self.cells = {c["command"]: c for c in cells if c["machine"] == machine()}

    def get(self, command: str) -> dict | None:
        return self.cells.get(command)

    def add(self, command: str, numbers: dict, run_dir: Path) -> None:
        meta = json.loads((run_dir / "meta.json").read_text())
        if not self.recording or meta["git_commit"].endswith("-dirty"):
            print(f"not recorded (--no-write, or an uncommitted tree): {run_dir}", flush=True)
            return
        cell = {
            "command": command,
            "machine": machine(),
            "date": meta["start_time"][:10],
            "git_commit": meta["git_commit"],
            **numbers,
        }
        with self.lock:
            with self.path.open("a") as record:
                record.write(json.dumps(cell) + "\n")
            self.cells[command] = cell


def run(
    method: str, seed: int, extra: list[str], work: Path, env: dict, train: bool, record: Record
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
        f"+method={method}",
        f"seed={seed}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_{method}",
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
    return numbers


def finished_run(work: Path, command: str) -> Path | None:
    """A completed run under `work` that `command` made, if there is one."""
    for meta_file in sorted(work.glob("outputs/runs/*/*/meta.json")):
        meta = json.loads(meta_file.read_text())
        if meta.get("command") == command and meta.get("status") == "completed":
            return meta_file.parent
    return None


def uncommitted() -> str:
    """`git status --porcelain` of the repository: its uncommitted changes and untracked files
    (empty for a tree a run can be reproduced from by its commit)."""
    root = Path(__file__).resolve().parent.parent
    status = ["git", "-C", str(root), "status", "--porcelain"]
    return subprocess.run(status, capture_output=True, text=True, check=True).stdout.strip()


def commits(cells: list[dict]) -> str:
    """`a1b2c3d (12 runs), ...` in the order of the record: the commits the cells ran from,
    `-dirty` for those recorded from an uncommitted tree before the script refused one."""
    counts: dict[str, int] = {}
    for cell in cells:
        commit = cell["git_commit"]
        short = commit[:7] + ("-dirty" if commit.endswith("-dirty") else "")
        counts[short] = counts.get(short, 0) + 1
    return ", ".join(f"{commit} ({n} run{'s' * (n > 1)})" for commit, n in counts.items())


def delta_m(accuracy: tuple[float, ...], baseline: tuple[float, ...]) -> float:
    """Δm (Maninis et al. 2019) in %: the mean relative gain over single-task, every metric an
    accuracy (higher is better), on the means over seeds."""
    return 100 * statistics.mean((a - b) / b for a, b in zip(accuracy, baseline, strict=True))


def mean_std(values: list[float]) -> str:
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} ± {statistics.stdev(values):.2f}"


def seconds(runs: list[dict]) -> str:
    """The mean seconds per epoch of the runs that had the machine to themselves; of all, with
    a `*`, when every run shared it (a cell marked `"shared_machine": true` in CELLS); `–` when
    no run has a timing (`"epoch_s": null`: a run paused part-way)."""
    timed = [run for run in runs if run["epoch_s"] is not None]
    alone = [run["epoch_s"] for run in timed if not run.get("shared_machine")]
    if alone:
        return f"{statistics.mean(alone):.1f}"
    if timed:
        return f"{statistics.mean(run['epoch_s'] for run in timed):.1f}*"
    return "–"


def run_cells(methods: list[str], seeds: list[int], jobs: int, run_one) -> dict:
    """Every (method, seed) cell, `jobs` at a time, seed by seed (every method's first seed
    before any second one), each printed as it finishes. Ctrl-C (to the whole process group, so the
    runs under way stop too) keeps what has finished, so a table can be written from part of
    the seeds."""
    stopping = False

    def cell(method: str, seed: int) -> dict | None:
        return None if stopping else run_one(method, seed)

    results = {}
    pool = ThreadPoolExecutor(max_workers=jobs)
    futures = {pool.submit(cell, name, seed): (name, seed) for seed in seeds for name in methods}
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
    done = sorted({seed for _, seed in results})
    dates = sorted({cell["date"] for cell in results.values() if "date" in cell})
    recorded = [cell for cell in results.values() if "git_commit" in cell]
    lines = [
        f"{measured_on(dates)}, device=cpu, {threads}, seeds {','.join(map(str, done))} "
        f"(mean ± sample std over the runs column). Command: `{command}`. Every run: "
        f"`mtlrun train +experiment=multimnist +method=NAME {' '.join(RECIPE)} seed=S`. "
        f"Commits the runs trained from: {commits(recorded)}.",
        "",
        "| rank | method | runs | left acc % | right acc % | Δm % | s / epoch | "
        "Sener & Koltun (left / right) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows = {name: [results[name, s] for s in seeds if (name, s) in results] for name in names}
    accuracies = {
        name: (statistics.mean(r["left"] for r in runs), statistics.mean(r["right"] for r in runs))
        for name, runs in rows.items()
        if runs and not any("error" in r for r in runs)
    }
    baseline = accuracies.get("single_task")
    delta = {
        name: delta_m(acc, baseline)
        for name, acc in accuracies.items()
        if baseline and name != "single_task"
    }
    ranked = sorted(delta, key=delta.get, reverse=True)
    for name in names:
        published = PUBLISHED.get(name)
        paper = f"{published[1]:.2f} / {published[2]:.2f} ({published[0]})" if published else ""
        failed = [run["error"] for run in rows[name] if "error" in run]
        if name not in accuracies:
            why = f"failed: {failed[0]}" if failed else "not run"
            lines.append(f"| | {name} | {len(rows[name])} | {why} | | | | {paper} |")
            continue
        runs = rows[name]
        rank = ranked.index(name) + 1 if name in delta else ""
        gain = f"{delta[name]:+.2f}" if name in delta else ""
        lines.append(
            f"| {rank} | {name} | {len(runs)} | {mean_std([r['left'] for r in runs])} | "
            f"{mean_std([r['right'] for r in runs])} | {gain} | {seconds(runs)} | {paper} |"
        )
    publish("multimnist", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
