"""`mtlrun report DIR [metrics=PATTERN,...] [delta_m=KEY,...] [groups=K] [out=OUT]`: tables,
learning curves, image grids, Δm with 95 % intervals and paired tests against the baseline,
the scalarization front and task affinity for the runs under DIR (a run or a sweep
folder), on the terminal and in DIR/report.{md,html,json} (or OUT/, for a folder that cannot be
written)."""

import sys
from pathlib import Path

from rich.console import Console

from mtlrun.errors import UserError
from mtlrun.report.build import write_report
from mtlrun.report.collect import check_runs_folder
from mtlrun.report.document import Table, Text, to_rich
from mtlrun.runfolder import writable_folder

USAGE = (
    "usage: mtlrun report DIR [metrics=PATTERN,...] [delta_m=KEY,...] [groups=K] [out=OUT]   "
    "e.g. metrics=test/digit/acc,test/*/nelbo (default: every test metric), "
    "delta_m=test/digit/nll (default: each task's primary metric), groups=2 (TAG's choice "
    "of at most 2 groups by the affinity runs measured), out=/tmp/report (default: DIR)"
)


def parse(args: list[str]) -> tuple[Path, list[str], list[str], Path, int | None]:
    """DIR, then the metric patterns and the Δm keys: `metrics=a,b` and `delta_m=a,b` (also
    `metrics=[a,b]`, or given more than once), the output folder (`out=OUT`, default DIR) and
    the number of task groups to suggest (`groups=K`)."""
    if not args or "=" in args[0] or args[0].startswith("-"):
        raise UserError(USAGE)
    options: dict[str, list[str]] = {"metrics": [], "delta_m": [], "out": [], "groups": []}
    for arg in args[1:]:
        key, _, value = arg.partition("=")
        if key not in options or not value:
            raise UserError(f"{arg!r} is not an option; {USAGE}")
        options[key] += [p.strip() for p in value.strip("[]").split(",") if p.strip()]
    root = Path(args[0])
    out = Path(options["out"][-1]) if options["out"] else root
    groups = None
    if options["groups"]:
        text = options["groups"][-1]
        if not text.isdigit() or int(text) < 1:
            raise UserError(f"groups={text} must be a whole number of groups, 1 or more")
        groups = int(text)
    return root, options["metrics"], options["delta_m"], out, groups


def main() -> None:
    args = sys.argv[1:]
    if args[:1] in (["-h"], ["--help"]):
        print(USAGE)
        return
    root, patterns, delta_m_keys, out, groups = parse(args)
    check_runs_folder(root)
    writable_folder(out)  # before the work
    blocks = write_report(root, patterns, delta_m_keys, out, groups)
    # Piped into a file or a pager, the tables keep their natural width instead of 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 1000)
    for block in blocks:
        if isinstance(block, Table):
            console.print(to_rich(block))
        elif isinstance(block, Text):
            console.print(block.text, markup=False)
    written = ", ".join(str(out / name) for name in ("report.md", "report.html", "report.json"))
    console.print(f"wrote {written}", markup=False)
