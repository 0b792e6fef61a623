"""How steady this machine is: the same fixed work, timed in half-second windows.

Three kinds of work: a pure-Python loop (one thread, like the tutorial's per-image work) and a
256×256 fp32 matrix product (both threads, its operands held in cache), which touch no main
memory and so show the CPUs' own speed; and a copy of 64 MB, twice the last-level cache, which
shows the memory's. Each runs for `--seconds`; the table gives the windows' speeds relative to
the fastest window. On a machine of its own, every window would be near 100 %. Writes the table
into BENCHMARKS.md between the cpu_drift markers.

    python bench/cpu_drift.py [--seconds 30] [--no-write]
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
from benchmarks_md import measured_on, publish

WINDOW = 0.5  # seconds


def python_loop() -> None:
    for _ in range(10_000):
        pass


def matmul_in_cache() -> Callable[[], None]:
    a, b = torch.randn(256, 256), torch.randn(256, 256)
    out = torch.empty(256, 256)
    return lambda: torch.mm(a, b, out=out)


def copy_from_memory() -> Callable[[], None]:
    source = torch.randn(16 * 2**20)  # 64 MB of fp32
    target = torch.empty_like(source)
    return lambda: target.copy_(source)


def window_rates(work: Callable[[], None], seconds: float) -> list[int]:
    """How many times `work` ran in each window."""
    rates = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        started, count = time.perf_counter(), 0
        while time.perf_counter() - started < WINDOW:
            work()
            count += 1
        rates.append(count)
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--no-write", action="store_true", help="print, do not edit BENCHMARKS.md")
    args = parser.parse_args()
    work = {
        "pure-Python loop, 1 thread": python_loop,
        f"256×256 fp32 matmul, {torch.get_num_threads()} threads": matmul_in_cache(),
        f"64 MB copy, {torch.get_num_threads()} threads": copy_from_memory(),
    }
    lines = [
        f"{measured_on()}, {len(work)} × {args.seconds:.0f} s in {WINDOW} s windows. "
        f"Command: `python bench/cpu_drift.py --seconds {args.seconds:.0f}`.",
        "",
        "| the same work, each window | slowest window | median | windows under 80 % |",
        "|---|---|---|---|",
    ]
    for name, unit in work.items():
        rates = window_rates(unit, args.seconds)
        fastest = max(rates)
        share_slow = sum(rate < 0.8 * fastest for rate in rates) / len(rates)
        lines.append(
            f"| {name} | {min(rates) / fastest:.0%} | "
            f"{statistics.median(rates) / fastest:.0%} | {share_slow:.0%} |"
        )
    publish("cpu_drift", lines, write=not args.no_write)


if __name__ == "__main__":
    main()
