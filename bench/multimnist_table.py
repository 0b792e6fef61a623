"""MultiMNIST (Sener & Koltun 2018 recipe): test accuracy and seconds per epoch for each
sharing strategy (with equal weighting) and each weighting method (with hard sharing), with
the `multimnist` experiment's own settings. Each configuration runs as its own process; the
table goes into BENCHMARKS.md between the multimnist markers.

    python bench/multimnist_table.py [--only hard/equal,soft/equal] [--no-write] [overrides...]
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
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
    "cagrad",
    "upgrad",
    "nashmtl",
]
CONFIGURATIONS = [f"{s}/equal" for s in STRATEGIES] + [f"hard/{w}" for w in WEIGHTINGS[1:]]


def run(sharing: str, weighting: str, extra: list[str], work: Path) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "mtlrun",
        "train",
        "+experiment=multimnist",
        f"sharing={sharing}",
        f"weighting={weighting}",
        "trainer.progress=false",
        "device=cpu",
        f"name=bench_{sharing}_{weighting}",
        *extra,
    ]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True)
    if result.returncode != 0:
        return {"error": result.stderr.strip().splitlines()[-1]}
    run_dir = Path(result.stdout.strip().splitlines()[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    epoch_seconds = [r["seconds"] for r in records if r["split"] == "train"]
    return {
        "left": summary["metrics"]["test/left_digit/acc"] * 100,
        "right": summary["metrics"]["test/right_digit/acc"] * 100,
        "epoch_s": statistics.mean(epoch_seconds),
        "total_s": summary["seconds"],
        "epochs": len(epoch_seconds),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated sharing/weighting pairs")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("overrides", nargs="*", help="extra mtlrun overrides for every run")
    args = parser.parse_args()
    require_data()
    pairs = args.only.split(",") if args.only else CONFIGURATIONS
    work = Path(tempfile.mkdtemp(prefix="mtlrun_multimnist_"))
    lines = [
        f"{measured_on()}, device=cpu, "
        f"one run each (seed 0). Command: `python bench/multimnist_table.py"
        f"{' ' + ' '.join(args.overrides) if args.overrides else ''}`.",
        "",
        "| sharing | weighting | left acc % | right acc % | s / epoch | total s |",
        "|---|---|---|---|---|---|",
    ]
    for pair in pairs:
        sharing, weighting = pair.split("/")
        row = run(sharing, weighting, args.overrides, work)
        print(pair, json.dumps(row), flush=True)
        if "error" in row:
            lines.append(f"| {sharing} | {weighting} | failed: {row['error']} | | | |")
        else:
            lines.append(
                f"| {sharing} | {weighting} | {row['left']:.2f} | {row['right']:.2f} | "
                f"{row['epoch_s']:.1f} | {row['total_s']:.0f} |"
            )
    publish("multimnist", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
