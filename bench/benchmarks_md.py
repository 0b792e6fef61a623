"""Writing a benchmark's table into its marked section of BENCHMARKS.md."""

from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


def write_section(name: str, text: str) -> None:
    """Replace what stands between `<!-- name:start -->` and `<!-- name:end -->`."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    before, rest = BENCHMARKS.read_text().split(start, 1)
    _, after = rest.split(end, 1)
    BENCHMARKS.write_text(f"{before}{start}\n{text}\n{end}{after}")
