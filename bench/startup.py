"""Start-up: what a command costs before it does any work, against a bare `import torch`.

Whole processes, interleaved, several repetitions, medians: `python -c "import torch"`,
`mtlrun train +experiment=multimnist --cfg job` (compose and print a config),
`mtlrun train --help`, and a refused config (`weighting=dwa weighting.temperature=-1`, one line
and exit status 2). None of the mtlrun commands may import torch: composing, checking and
refusing a config are Python's and Hydra's work only. The target: `--cfg job` at most half of
`import torch`. Writes the table into BENCHMARKS.md between the startup markers.

    python bench/startup.py [--repeats 7] [--no-write]
"""

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks_md import measured_on, publish

COMMANDS = {
    "python -c 'import torch'": ["-c", "import torch"],
    "mtlrun train +experiment=multimnist --cfg job": [
        "-m",
        "mtlrun",
        "train",
        "+experiment=multimnist",
        "--cfg",
        "job",
    ],
    "mtlrun train --help": ["-m", "mtlrun", "train", "--help"],
    "mtlrun train weighting=dwa weighting.temperature=-1 (refused)": [
        "-m",
        "mtlrun",
        "train",
        "weighting=dwa",
        "weighting.temperature=-1",
    ],
}


def seconds(arguments: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, *arguments], cwd=cwd, capture_output=True, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in COMMANDS}
    with tempfile.TemporaryDirectory() as work:
        for arguments in COMMANDS.values():  # a first, unmeasured round warms the caches
            seconds(arguments, Path(work))
        for _ in range(args.repeats):
            for name, arguments in COMMANDS.items():
                times[name].append(seconds(arguments, Path(work)))
    torch_seconds = statistics.median(times["python -c 'import torch'"])
    lines = [
        f"{measured_on()}, {args.repeats} interleaved repetitions, medians "
        "(`python bench/startup.py`):",
        "",
        "| command | seconds | × `import torch` |",
        "|---|---:|---:|",
    ]
    for name, values in times.items():
        median = statistics.median(values)
        lines.append(f"| `{name}` | {median:.2f} | {median / torch_seconds:.2f} |")
    publish("startup", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
