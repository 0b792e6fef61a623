"""What the method tables share (bench/multimnist_table.py, bench/dense_mnist_table.py): their
options, the catalogue's methods, a sitting that trains (or reads) every cell, the record of
finished cells, the runs' folders, the per-seed comparison against a baseline with its paired
tests, the cells' formatting and running the cells in parallel."""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from benchmarks_md import machine, measured_on, require_data

from mtlrun.report.inference import holm, paired_p_value, t_interval, verdict

CATALOGUE = Path(__file__).resolve().parent.parent / "configs" / "method"
FRONT = "scalarization"


def methods() -> list[str]:
    """Every option of the `method` group but the front's: the baseline first, then the sharing
    strategies with equal weights, then hard sharing with each weighting."""
    names = sorted(path.stem for path in CATALOGUE.glob("*.yaml") if path.stem != FRONT)
    weightings = [name for name in names if name.startswith("hard_") and name != "hard_equal"]
    strategies = [name for name in names if name not in weightings and name != "single_task"]
    return ["single_task", *sorted(strategies, key=lambda n: n != "hard_equal"), *weightings]


class Record:
    """The finished cells of every sitting, a JSON line each in CELLS, by their command."""

    def __init__(self, path: Path, recording: bool) -> None:
        self.path = path
        self.recording = recording  # False: --no-write, from a tree that may be uncommitted
        self.lock = threading.Lock()  # the cells finish on the pool's threads
        lines = path.read_text().splitlines() if path.exists() else []
        cells = [json.loads(line) for line in lines if line.strip()]
        self.cells = {c["command"]: c for c in cells if c["machine"] == machine()}
        self.finished: list[dict] = []  # this sitting's cells, written by `save`

    def get(self, command: str) -> dict | None:
        return self.cells.get(command)

    def add(self, command: str, numbers: dict, run_dir: Path) -> dict | None:
        """The cell recorded for `command` (with its commit and date), or None where it is not
        recorded."""
        meta = json.loads((run_dir / "meta.json").read_text())
        if not self.recording or meta["git_commit"].endswith("-dirty"):
            print(f"not recorded (--no-write, or an uncommitted tree): {run_dir}", flush=True)
            return None
        cell = {
            "command": command,
            "machine": machine(),
            "date": meta["start_time"][:10],
            "git_commit": meta["git_commit"],
            **numbers,
        }
        with self.lock:
            self.finished.append(cell)
            self.cells[command] = cell
        return cell

    def save(self) -> None:
        """Append this sitting's cells to the record: at its end, not as each run finishes, since
        a record changed mid-sitting would make the tree uncommitted (`-dirty`) for every later
        run of the sitting."""
        if not self.finished:  # nothing trained (or --no-write): no empty record either
            return
        with self.path.open("a") as record:
            record.writelines(json.dumps(cell) + "\n" for cell in self.finished)
        self.finished = []


def options(description: str) -> argparse.ArgumentParser:
    """The options every method table takes (a table adds its own)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds per cell")
    parser.add_argument("--jobs", type=int, default=1, help="runs at once, one thread each")
    parser.add_argument("--only", help="comma-separated method names (configs/method)")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--work", type=Path, help="folder of the runs; finished ones are reused")
    parser.add_argument(
        "--read-only", action="store_true", help="table from --work's finished runs only"
    )
    parser.add_argument("overrides", nargs="*", help="extra mtlrun overrides for every run")
    return parser


@dataclass
class Sitting:
    """A table's cells: `results` by (method, seed), `rows` the methods none of whose runs
    failed (by seed), the caption's opening (when, where, how, the command) and the commits the
    recorded cells ran from."""

    results: dict[tuple[str, int], dict]
    rows: dict[str, dict[int, dict]]
    opening: str
    commits: str

    def missing(self, name: str) -> tuple[int, str]:
        """A row without cells: how many of its runs failed, and `failed: <line>` or `not
        run`."""
        failed = [c["error"] for (n, _), c in self.results.items() if n == name and "error" in c]
        return len(failed), f"failed: {failed[0]}" if failed else "not run"


def sit(
    args: argparse.Namespace,
    script: str,
    cells: Path,
    names: list[str],
    arguments_of: Callable[[str, int], list[str]],
    numbers_of: Callable[[dict], dict],
) -> Sitting:
    """Every (method, seed) cell of `names`: from the record `cells`, else from its finished run
    under --work, else trained (`mtlrun train` with `arguments_of(method, seed)` and the
    command line's overrides; `numbers_of` picks the cell's numbers from its test metrics).
    Refuses an uncommitted tree unless --no-write, and records the sitting's cells at its end."""
    require_data()
    changes = uncommitted()
    if changes and not args.no_write:
        first = changes.splitlines()[0]
        sys.exit(
            f"uncommitted changes ({first.strip()}, ...): commit them (or run with --no-write) so "
            "that every recorded cell names the commit it ran"
        )
    seeds = [int(seed) for seed in args.seeds.split(",")]
    work = args.work or Path(tempfile.mkdtemp(prefix=f"mtlrun_{Path(script).stem}_"))
    work.mkdir(parents=True, exist_ok=True)
    command = f"python bench/{script}" + "".join(f" {o}" for o in args.overrides)
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
    record = Record(cells, recording=not args.no_write)

    def run_one(name: str, seed: int) -> dict | None:
        arguments = [*arguments_of(name, seed), *args.overrides]
        return cell(arguments, work, env, not args.read_only, record, numbers_of)

    results = run_cells(names, seeds, args.jobs, run_one)
    record.save()
    done = sorted({seed for _, seed in results})
    dates = sorted({c["date"] for c in results.values() if "date" in c})
    rows = {
        name: {s: results[name, s] for s in seeds if (name, s) in results}
        for name in names
        if any((name, s) in results for s in seeds)
        and not any("error" in results.get((name, s), {}) for s in seeds)
    }
    opening = (
        f"{measured_on(dates)}, device=cpu, {threads}, seeds {','.join(map(str, done))} "
        f"(mean ± the half-width of the 95 % t interval over the runs column). Command: "
        f"`{command}`."
    )
    recorded = [c for c in results.values() if "git_commit" in c]
    return Sitting(results, rows, opening, commits(recorded))


def cell(
    arguments: list[str],
    work: Path,
    env: dict,
    train: bool,
    record: Record,
    numbers_of: Callable[[dict], dict],
) -> dict | None:
    """One cell, `mtlrun train ARGUMENTS`: recorded, else from its finished run under `work`,
    else from a new run (None if not `train`); a failed run is its last line, as `error`."""
    command_line = " ".join(["mtlrun", "train", *arguments])
    recorded = record.get(command_line)
    if recorded is not None:
        return recorded
    run_dir = finished_run(work, command_line)
    if run_dir is None and not train:
        return None
    if run_dir is None:
        command = [sys.executable, "-m", "mtlrun", "train", *arguments]
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            lines = result.stderr.strip().splitlines()
            return {"error": lines[-1] if lines else f"exit status {result.returncode}"}
        run_dir = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    numbers = numbers_of(summary["metrics"])
    numbers["epoch_s"] = statistics.mean(r["seconds"] for r in records if r["split"] == "train")
    return record.add(command_line, numbers, run_dir) or numbers  # with its commit, if recorded


def method_overrides(name: str) -> list[str]:
    """`+method=NAME`; a grid point of the front, `scalarization@K`, also names its point."""
    method, _, point = name.partition("@")
    return [f"+method={method}", *([f"weighting.point={point}"] if point else [])]


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


def mean_interval(values: list[float], sign: str = "", digits: int = 2) -> str:
    """`mean ± h`, h the half-width of the mean's 95 % t interval; the mean alone for one."""
    interval = t_interval(values)
    mean = statistics.mean(values)
    shown = f"{mean:{sign}.{digits}f}"
    return shown if interval is None else f"{shown} ± {interval[1] - mean:.{digits}f}"


def half_width(values: list[float]) -> float:
    interval = t_interval(values)
    return 0.0 if interval is None else interval[1] - statistics.mean(values)


class Comparison:
    """Every method's per-seed Δm against one baseline (runs paired by seed; `delta_m` of a cell
    and the baseline's cell of the same seed), the paired t-test of each against 0 and the
    p-values Holm-corrected over the methods tested."""

    def __init__(
        self,
        baseline: str,
        rows: dict[str, dict[int, dict]],
        delta_m: Callable[[dict, dict], float],
    ) -> None:
        self.baseline = baseline
        base = rows.get(baseline, {})
        self.per_seed = {
            name: [delta_m(cells[s], base[s]) for s in sorted(cells)]
            for name, cells in rows.items()
            if name != baseline and base and set(cells) == set(base)
        }
        raw = {name: paired_p_value(values) for name, values in self.per_seed.items()}
        tested = [name for name, p_value in raw.items() if p_value is not None]
        self.p_values = dict(zip(tested, holm([raw[name] for name in tested]), strict=True))

    def gain(self, name: str) -> str:
        return mean_interval(self.per_seed[name], "+") if name in self.per_seed else ""

    def test(self, name: str) -> str:
        """`0.431 (no detectable difference)`, `0.012 (worse)`, or empty without a test."""
        if name not in self.p_values:
            return ""
        p_value = self.p_values[name]
        finding = verdict(statistics.mean(self.per_seed[name]), p_value)
        return f"{p_value:.3f} ({finding})"


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
