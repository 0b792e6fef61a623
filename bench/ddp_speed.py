"""DDP on this machine's CPU: one run on 2 processes (`trainer.devices=2`, gloo) against the same
run on 1 process, MLP on MNIST with three tasks, for a loss weighting (equal) and a gradient
aggregator (UPGrad, whose Jacobian the ranks reduce every step).

Whole `mtlrun train` processes, alternating, several repetitions. Reports the training time
per epoch (the `seconds` of metrics.jsonl's train records: the epoch's steps, not start-up or
evaluation), the whole process's wall-clock time and the final test accuracies. The 1-process
run uses all the cores as threads; each of the 2 ranks gets half of them. Writes the table
into BENCHMARKS.md between the ddp_speed markers.

    python bench/ddp_speed.py [--repeats 2] [--epochs 2] [--no-write]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import measured_on, publish, require_data

WEIGHTINGS = ("equal", "upgrad")
TASKS = ("digit", "parity", "magnitude")


def run(work: Path, weighting: str, devices: int, epochs: int, repeat: int) -> dict:
    command = [
        *(sys.executable, "-m", "mtlrun", "train", "+experiment=mlp_mnist_tasks"),
        f"weighting={weighting}",
        f"trainer.devices={devices}",
        f"trainer.epochs={epochs}",
        "trainer.progress=false",
        "device=cpu",
        f"hydra.run.dir={work / f'{weighting}_{devices}_{repeat}'}",
    ]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=work, capture_output=True, text=True, check=True)
    wall = time.perf_counter() - started
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").open()]
    metrics = json.loads((run_dir / "summary.json").read_text())["metrics"]
    return {
        "epoch_s": statistics.mean(r["seconds"] for r in records if r["split"] == "train"),
        "wall_s": wall,
        **{task: metrics[f"test/{task}/acc"] for task in TASKS},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    require_data()
    work = Path(tempfile.mkdtemp(prefix="mtlrun_bench_ddp_"))
    results: dict[tuple[str, int], list[dict]] = {}
    for repeat in range(args.repeats):
        for weighting in WEIGHTINGS:
            for devices in (1, 2):
                row = run(work, weighting, devices, args.epochs, repeat)
                results.setdefault((weighting, devices), []).append(row)
                print(weighting, devices, json.dumps(row), flush=True)

    def mean(weighting: str, devices: int, key: str) -> float:
        return statistics.mean(row[key] for row in results[weighting, devices])

    lines = [
        f"{measured_on()}, device=cpu, gloo, {args.epochs} epochs, {args.repeats} repetitions, "
        f"alternating; means. Command: `python bench/ddp_speed.py --repeats {args.repeats} "
        f"--epochs {args.epochs}`.",
        "",
        "| weighting | processes | s / epoch (training) | × 1 process | whole run s | "
        "test acc digit | parity | magnitude |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for weighting in WEIGHTINGS:
        for devices in (1, 2):
            epoch_s = mean(weighting, devices, "epoch_s")
            ratio = epoch_s / mean(weighting, 1, "epoch_s")
            accuracies = " | ".join(f"{mean(weighting, devices, t):.4f}" for t in TASKS)
            lines.append(
                f"| {weighting} | {devices} | {epoch_s:.2f} | {ratio:.2f}× | "
                f"{mean(weighting, devices, 'wall_s'):.1f} | {accuracies} |"
            )
    publish("ddp_speed", lines, not args.no_write)


if __name__ == "__main__":
    main()
