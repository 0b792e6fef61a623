"""`mtlrun resume RUN [key=value ...]`: continue an interrupted run in its own folder from
checkpoints/last.pt (model, optimiser, scheduler, weighting, RNG states, position in the
epoch); a deterministic CPU run ends with exactly the numbers of an uninterrupted one.
Overrides are for the machine, not the experiment: only those of `MACHINE_KEYS` are accepted
(anything else would change what is being trained half-way), and meta.json records them.
`--trackers` lets the run log again to its tracker destinations on the network or outside its
output tree (`mtlrun.trackers`)."""

import sys

from mtlrun.compose import validate
from mtlrun.errors import UserError
from mtlrun.lifecycle import train
from mtlrun.rebuild import apply_overrides, run_config, split_arguments
from mtlrun.runfolder import RunFolder, now, run_status
from mtlrun.trackers import leave_out_foreign, split_option

# Where the run continues and how it shows progress; the numbers do not depend on them (on the
# same device type: a CPU run resumed on a GPU continues within floating-point tolerance).
MACHINE_KEYS = ("device", "trainer.progress", "trainer.devices")


def check_machine_overrides(overrides: list[str]) -> None:
    for override in overrides:
        key = override.split("=", 1)[0].lstrip("+~")
        if key not in MACHINE_KEYS:
            raise UserError(
                f"{key} would change the experiment half-way; resume accepts only "
                f"{', '.join(MACHINE_KEYS)}; to train differently, start a new run with "
                "`mtlrun train` (or `mtlrun reproduce RUN key=value`)"
            )


def main() -> None:
    arguments, trackers_allowed = split_option(sys.argv[1:])
    run_dir, _, overrides = split_arguments(arguments, {})
    check_machine_overrides(overrides)
    run = RunFolder(run_dir)
    meta = run.read_meta()
    status = run_status(meta)
    if status == "completed":
        raise UserError(f"{run_dir} already completed; use `mtlrun reproduce` to run it again")
    if status == "running":
        raise UserError(
            f"{run_dir} is still being trained (pid {meta.get('pid')} on {meta.get('host')}); "
            "stop it first (Ctrl-C, or kill -INT PID), then resume"
        )
    if not run.checkpoint("last").is_file():
        raise UserError(
            f"{run_dir} has no checkpoints/last.pt to resume from (status: {status}); "
            "start it again with `mtlrun train`"
        )
    cfg = apply_overrides(run_config(run_dir), overrides)
    run.read_metrics()  # a damaged metrics.jsonl stops here, not half-way into training
    validate(cfg)
    leave_out_foreign(cfg, run_dir, trackers_allowed)
    resumes = meta.get("resumes") or []
    run.update_meta(resumes=[*resumes, {"time": now(), "overrides": overrides}])
    try:
        train(cfg, run_dir, resume=True)
    except KeyboardInterrupt:
        print(run_dir)
        sys.exit(130)
    print(run_dir)
