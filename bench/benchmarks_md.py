"""What the bench scripts share: the data check, the machine and commit line and writing a
table into its marked section of BENCHMARKS.md, which they do only from a committed tree (a
recorded figure names the exact code that produced it)."""

import os
import platform
import subprocess
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
    """`Measured <dates, or today> on <machine>`, the start of every table's caption; for a
    table measured now, `from commit <hash>` too (a record's cells name their own commits)."""
    where = f"Measured {', '.join(dates or [str(date.today())])} on {machine()}"
    return where if dates else f"{where} from commit {commit()[:10]}"


def commit() -> str:
    """The commit of the source tree; a tree with changes to tracked files other than
    BENCHMARKS.md (which the benches write) is `-dirty`."""
    root = BENCHMARKS.parent

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True
        ).stdout

    changed = [
        line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
    ]
    dirty = any(path != BENCHMARKS.name for path in changed)
    return git("rev-parse", "HEAD").strip() + ("-dirty" if dirty else "")


def publish(name: str, lines: list[str], write: bool) -> None:
    """Print the table, and unless told not to, put it in BENCHMARKS.md's `name` section: only
    from a committed tree (commit, then run the bench again; --no-write prints it only)."""
    table = "\n".join(lines)
    print(table)
    if write and commit().endswith("-dirty"):
        sys.exit("not written into BENCHMARKS.md: the tree has uncommitted changes; commit first")
    if write:
        write_section(name, table)


def write_section(name: str, text: str) -> None:
    """Replace what stands between `<!-- name:start -->` and `<!-- name:end -->`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, rest = BENCHMARKS.read_text().split(start, 1)
    _, after = rest.split(end, 1)
    BENCHMARKS.write_text(f"{before}{start}\n{text}\n{end}{after}")
