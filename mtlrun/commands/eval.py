"""`mtlrun eval RUN [checkpoint=best|last] [out=DIR] [key=value ...]`: evaluate a saved
checkpoint again on the validation and test splits; writes <checkpoint>.json into RUN/eval/,
or into DIR (for a run folder that cannot be written)."""

import sys
import time
from pathlib import Path

from rich.console import Console

from mtlrun.evaluate import check_finite, evaluate
from mtlrun.rebuild import load_trained, split_arguments
from mtlrun.runfolder import now, writable_folder, write_json
from mtlrun.terminal import metrics_table


def main() -> None:
    run_dir, options, overrides = split_arguments(sys.argv[1:], {"checkpoint": "best", "out": ""})
    out = writable_folder(Path(options["out"] or run_dir / "eval"))  # before the work
    experiment, checkpoint = load_trained(run_dir, options["checkpoint"], overrides)
    started = time.perf_counter()
    metrics: dict[str, float] = {}
    data = experiment.data
    if len(data.val):
        metrics |= evaluate(experiment, data.val, "val")
    metrics |= evaluate(experiment, data.test, "test", final=True)
    check_finite(metrics, f"with {checkpoint}.pt")
    path = out / f"{checkpoint}.json"
    write_json(
        path,
        {
            "checkpoint": checkpoint,
            "time": now(),
            "overrides": overrides,
            "seconds": round(time.perf_counter() - started, 3),
            "metrics": metrics,
        },
    )
    Console(highlight=False).print(metrics_table(f"{run_dir.name} · {checkpoint}.pt", metrics))
    print(path)
