"""What the bench scripts share: the data check, the machine line and writing a table into
its marked section of BENCHMARKS.md."""

import os
import platform
import sys
from datetime import date
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def require_data() -> None:
    if not os.environ.get("MTLRUN_DATA"):
        sys.exit("set MTLRUN_DATA to the folder holding MNIST (make bench does)")


def machine() -> str:
    """`<host> (<n> CPUs, <processor>)`."""
    processor = platform.processor() or platform.machine()
    return f"{platform.node()} ({os.cpu_count()} CPUs, {processor})"


def measured_on(dates: list[str] | None = None) -> str:
    """`Measured <dates, or today> on <machine>`, the start of every table's caption."""
    return f"Measured {', '.join(dates or [str(date.today())])} on {machine()}"


def publish(name: str, lines: list[str], write: bool) -> None:
    """Print the table, and unless told not to, put it in BENCHMARKS.md's `name` section."""
    table = "\n".join(lines)
    print(table)
    if write:
        write_section(name, table)


def write_section(name: str, text: str) -> None:
    """Replace what stands between `<!-- name:start -->` and `<!-- name:end -->`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, rest = BENCHMARKS.read_text().split(start, 1)
    _, after = rest.split(end, 1)
    BENCHMARKS.write_text(f"{before}{start}\n{text}\n{end}{after}")
