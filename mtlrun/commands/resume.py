"""`mtlrun resume RUN [key=value ...]`: continue an interrupted run in its own folder from
checkpoints/last.pt (model, optimiser, scheduler, weighting, RNG states, position in the
epoch); a deterministic CPU run ends with exactly the numbers of an uninterrupted one.
Overrides are for the machine (e.g. device=cpu), not the experiment."""

import sys

from mtlrun.errors import UserError
from mtlrun.loop import train
from mtlrun.rebuild import apply_overrides, run_config, split_arguments
from mtlrun.runfolder import RunFolder


def main() -> None:
    run_dir, _, overrides = split_arguments(sys.argv[1:], {})
    run = RunFolder(run_dir)
    status = run.read_meta().get("status")
    if status == "completed":
        raise UserError(f"{run_dir} already completed; use `mtlrun reproduce` to run it again")
    if not run.checkpoint("last").is_file():
        raise UserError(
            f"{run_dir} has no checkpoints/last.pt to resume from (status: {status}); "
            "start it again with `mtlrun train`"
        )
    cfg = apply_overrides(run_config(run_dir), overrides)
    try:
        train(cfg, run_dir, resume=True)
    except KeyboardInterrupt:
        print(run_dir)
        sys.exit(130)
    print(run_dir)
