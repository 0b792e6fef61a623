"""Run folders under a directory, found by their meta.json and read without building anything
(no torch): status, config, overrides, final metrics with their directions, image grids."""

import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtlrun.errors import UserError
from mtlrun.runfolder import RunFolder, damaged, read_json, read_yaml, run_status

GRID_NAME = re.compile(r"(?P<kind>.+)_e(?P<epoch>\d+)")


def read_config(path: Path) -> dict[str, Any]:
    """A run's resolved config as plain data, {} when it has none."""
    if not path.is_file():
        return {}
    config = read_yaml(path)
    if not isinstance(config, DictConfig):
        raise damaged(path, "not a YAML mapping")
    return OmegaConf.to_container(config)  # type: ignore[return-value]


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys: {"trainer": {"epochs": 10}} → {"trainer.epochs": 10}.
    Lists and empty mappings are values (`logger.jsonl: {}` still says which logger is on)."""
    flat: dict[str, Any] = {}
    for key, value in node.items():
        if isinstance(value, dict) and value:
            flat |= flatten(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclass
class Run:
    path: Path
    meta: dict[str, Any]
    config: dict[str, Any]  # config.resolved.yaml
    overrides: dict[str, str]  # Hydra's .hydra/overrides.yaml, `+` dropped from the keys
    summary: dict[str, Any]
    records: list[dict[str, Any]]  # metrics.jsonl

    @classmethod
    def load(cls, path: Path) -> "Run":
        folder = RunFolder(path)
        overrides = {}
        for override in folder.overrides():
            key, _, value = override.partition("=")
            overrides[key.lstrip("+")] = value
        return cls(
            path=path,
            meta=read_json(folder.meta_path),
            config=read_config(folder.config_path),
            overrides=overrides,
            summary=folder.read_summary(),
            records=folder.read_metrics(),
        )

    @property
    def name(self) -> str:
        return str(self.config.get("name", self.path.name))

    @property
    def status(self) -> str:
        return run_status(self.meta)

    @property
    def metrics(self) -> dict[str, float]:
        return self.summary.get("metrics", {})

    @property
    def directions(self) -> dict[str, str]:
        """Metric key → "min" (lower is better) or "max", for every key in summary.json."""
        return self.summary.get("directions", {})

    @property
    def primary_metrics(self) -> dict[str, str]:
        """Task → its headline test metric key; tasks without one (generation) are absent."""
        return self.summary.get("primary_metrics", {})

    @property
    def knows_directions(self) -> bool:
        """Whether summary.json says which way its metrics improve (an older mtlrun did not)."""
        return "directions" in self.summary and "primary_metrics" in self.summary

    @property
    def seed(self) -> int | None:
        seed = self.config.get("seed", self.meta.get("seed"))
        return None if seed is None else int(seed)

    @property
    def flat_config(self) -> dict[str, Any]:
        """The resolved config as dotted keys."""
        return flatten(self.config)

    @property
    def seconds(self) -> float | None:
        return self.summary.get("seconds")

    @property
    def seconds_per_epoch(self) -> float | None:
        """Training and evaluation time over the epochs trained (start-up left out)."""
        seconds, epochs = self.summary.get("seconds"), self.summary.get("epochs")
        return seconds / epochs if seconds is not None and epochs else None

    @property
    def tasks(self) -> dict[str, str]:
        """Task name → task type, in config order."""
        return {name: node.get("type") for name, node in self.config.get("tasks", {}).items()}

    @property
    def single_task(self) -> bool:
        return self.config.get("sharing", {}).get("name") == "single_task"

    def last_images(self) -> list[Path]:
        """The newest grid of each kind (recon_e005.png of recon_e001..e005) and the grids
        written once (interpolation.png)."""
        newest: dict[str, tuple[int, Path]] = {}
        for path in RunFolder(self.path).images.glob("*.png"):
            match = GRID_NAME.fullmatch(path.stem)
            kind, epoch = (match["kind"], int(match["epoch"])) if match else (path.stem, -1)
            if kind not in newest or epoch > newest[kind][0]:
                newest[kind] = (epoch, path)
        return [path for _, path in sorted(newest.values(), key=lambda item: item[1].name)]


def natural_order(path: Path) -> list[str | int]:
    """Sort key with numbers compared as numbers: sweep job 2 before job 10."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.as_posix())]


def check_runs_folder(root: Path) -> None:
    """Refuse a folder of runs that is not there, suggesting one that is: `./outputs` (where
    `mtlrun train` writes) only where it exists and was not the folder asked for."""
    if root.is_dir():
        return
    if root.exists():
        raise UserError(f"{root} is a file; pass a run or sweep folder")
    if Path("outputs").is_dir() and root.resolve() != Path("outputs").resolve():
        raise UserError(f"{root} does not exist; pass a run or sweep folder, e.g. outputs")
    raise UserError(
        f"{root} does not exist in {Path.cwd()}; `mtlrun train` writes its runs into the "
        "outputs folder of the folder it runs in: go there, or pass the folder that holds them"
    )


def find_runs(root: Path) -> list[Run]:
    """Every run folder under `root` (or `root` itself), in path order. An unreadable folder (a
    damaged meta.json, summary.json, metrics.jsonl or config) is skipped with a one-line
    warning, so one broken run does not hide the others."""
    check_runs_folder(root)
    runs, skipped = [], 0
    for meta in sorted(root.rglob(RunFolder.META), key=natural_order):
        try:
            runs.append(Run.load(meta.parent))
        except (OSError, UserError) as error:
            print(f"mtlrun: warning: skipping {meta.parent}: {error}", file=sys.stderr)
            skipped += 1
    if not runs:
        why = f"{skipped} skipped, above" if skipped else "no meta.json found"
        raise UserError(f"no runs under {root} that can be read ({why})")
    return runs
