"""The logger interface: every evaluation's record goes to each configured logger."""

from pathlib import Path
from typing import Any

from mtlrun.schemas.logger import LoggerConfig

RECORD_FIELDS = ("epoch", "step", "split", "stage", "seconds")  # a record's keys besides metrics


def kept_on_resume(record_epoch: int, split: str, epoch: int) -> bool:
    """Whether a record logged before an interruption stays when the run resumes at `epoch`:
    one of an earlier epoch, but not the final test evaluation's, which a resumed run (one
    that did not complete) always does again."""
    return record_epoch < epoch and split != "test"


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """`{"optim": {"lr": 0.001}}` → `{"optim.lr": 0.001}`, for trackers' flat params; they take
    scalars and strings only, so lists become their text."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = str(value) if isinstance(value, list) else value
    return flat


def sweep_folder(run_dir: Path) -> Path | None:
    """The sweep a run is a job of, for trackers that group its jobs: Hydra writes
    multirun.yaml into the sweep's folder."""
    parent = run_dir.resolve().parent
    return parent if (parent / "multirun.yaml").is_file() else None


class Logger:
    """Receives metric records (epoch, step, split, seconds and `<split>/<task>/<metric>`
    keys), image grids as they are written, and the final summary."""

    def __init__(self, config: LoggerConfig, run_dir: Path) -> None:
        self.run_dir = run_dir

    def start(self, config: dict[str, Any]) -> None:
        """The run's resolved config, before the first record (and again when it resumes)."""

    def log_metrics(self, record: dict[str, Any]) -> None:
        pass

    def log_image(self, tag: str, path: Path, epoch: int) -> None:
        pass

    def resume(self, epoch: int) -> None:
        """Forget what was logged from `epoch` on: a resumed run logs it again."""

    def finish(self, config: dict[str, Any], summary: dict[str, Any]) -> None:
        pass

    def close(self) -> None:
        pass
