"""`mtlrun reproduce RUN [key=value ...] [rtol=R]`: rerun RUN's saved config into a new run
folder and compare the final metrics side by side.

Agreement means bit-for-bit equality when the original ran on the CPU with
trainer.deterministic=true, else a relative difference of at most `rtol` (default 0.01).
Exit status 0 when every metric agrees, 1 when one does not. The run's tracker destinations on
the network or outside the output tree are used when named again or with `--trackers`
(`mtlrun.trackers`)."""

import sys

from rich.console import Console
from rich.table import Table

from mtlrun.compose import validate
from mtlrun.errors import UserError
from mtlrun.lifecycle import train
from mtlrun.rebuild import apply_overrides, run_config, split_arguments
from mtlrun.runfolder import RunFolder, check_run_name, new_run_dir
from mtlrun.terminal import format_value
from mtlrun.trackers import leave_out_foreign, split_option


def relative_difference(old: float, new: float) -> float:
    return abs(new - old) / max(abs(old), 1e-12)


def metric_agrees(old: float, new: float, rtol: float) -> bool:
    """Equal bit for bit when `rtol` is 0, else within `rtol` of the original."""
    return new == old if rtol == 0 else relative_difference(old, new) <= rtol


def compare(original: dict[str, float], new: dict[str, float], rtol: float) -> Table:
    table = Table(title="reproduction (test metrics of the final model)", title_justify="left")
    for column in ("metric", "original", "reproduced", "relative difference", ""):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key in sorted(original.keys() | new.keys()):
        old, value = original.get(key), new.get(key)
        if old is None or value is None:
            table.add_row(key, str(old), str(value), "missing", "✗")
            continue
        table.add_row(
            key,
            format_value(old),
            format_value(value),
            f"{relative_difference(old, value):.2e}",
            "✓" if metric_agrees(old, value, rtol) else "✗",
        )
    return table


def agree(original: dict[str, float], new: dict[str, float], rtol: float) -> bool:
    return original.keys() == new.keys() and all(
        metric_agrees(value, new[key], rtol) for key, value in original.items()
    )


def main() -> None:
    arguments, trackers_allowed = split_option(sys.argv[1:])
    run_dir, options, overrides = split_arguments(arguments, {"rtol": ""})
    cfg = apply_overrides(run_config(run_dir), overrides)
    original_run = RunFolder(run_dir)
    if not original_run.summary_path.is_file():
        raise UserError(
            f"{run_dir} has no summary.json: only finished runs can be reproduced; "
            "an interrupted one continues with `mtlrun resume`"
        )
    original = original_run.read_summary()["metrics"]
    exact = bool(cfg.trainer.deterministic) and original_run.read_meta().get("device") == "cpu"
    try:
        rtol = float(options["rtol"]) if options["rtol"] else (0.0 if exact else 0.01)
    except ValueError:
        raise UserError(f"rtol={options['rtol']!r} is not a number") from None

    validate(cfg)  # with the overrides, before the new folder is made
    check_run_name(str(cfg.name), suffix="_reproduce")
    new_dir = new_run_dir(f"{cfg.name}_reproduce").resolve()
    named = [override.split("=", 1)[0].lstrip("+") for override in overrides]
    leave_out_foreign(cfg, new_dir, trackers_allowed, named)
    RunFolder(new_dir).record_composition(cfg, [*original_run.overrides(), *overrides])
    try:
        new = train(cfg, new_dir)["metrics"]
    except (UserError, KeyboardInterrupt):
        RunFolder(new_dir).remove_if_unstarted()
        raise
    RunFolder(new_dir).update_meta(reproduces=str(run_dir.resolve()))
    console = Console(highlight=False)
    console.print(compare(original, new, rtol))
    ok = agree(original, new, rtol)
    how = "bit for bit" if rtol == 0 else f"within rtol={rtol:g}"
    console.print(f"{'reproduced' if ok else 'NOT reproduced'} ({how}): {run_dir} -> {new_dir}")
    print(new_dir)
    sys.exit(0 if ok else 1)
