"""Run folders written by hand (meta.json, config.resolved.yaml, .hydra/overrides.yaml,
summary.json, metrics.jsonl, images), for report and list tests with known numbers."""

import json
from pathlib import Path

from omegaconf import OmegaConf
from PIL import Image

VAE_TASKS = {"reconstruction": "reconstruction", "digit": "classification"}


def make_run(
    path: Path,
    overrides: list[str],
    metrics: dict[str, float],
    *,
    sharing: str = "hard",
    dataset: str = "synthetic",
    tasks: dict[str, str] = VAE_TASKS,
    status: str = "completed",
    start_time: str = "2026-01-02T03:04:05+00:00",
) -> Path:
    """A run with two evaluations whose validation metrics end at `metrics`' values."""
    (path / ".hydra").mkdir(parents=True)
    (path / "images").mkdir()
    seed = next((int(o.split("=")[1]) for o in overrides if o.startswith("seed=")), 0)
    OmegaConf.save(OmegaConf.create(overrides), path / ".hydra" / "overrides.yaml")
    config = {
        "name": "vae_mnist",
        "seed": seed,
        "dataset": {"name": dataset, "n_train": 256, "root": None},
        "sharing": {"name": sharing},
        "tasks": {name: {"type": kind, "weight": 1.0} for name, kind in tasks.items()},
    }
    OmegaConf.save(OmegaConf.create(config), path / "config.resolved.yaml")
    meta = {"status": status, "seed": seed, "start_time": start_time, "end_time": start_time}
    (path / "meta.json").write_text(json.dumps(meta))
    if status != "completed":
        return path
    (path / "summary.json").write_text(json.dumps({"metrics": metrics, "seconds": 1.5}))
    records = [
        {"epoch": epoch, "step": 4 * epoch, "split": "val", "seconds": float(epoch)}
        | {key.replace("test/", "val/", 1): value * (3 - epoch) for key, value in metrics.items()}
        for epoch in (1, 2)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for name in ("recon_e001.png", "recon_e002.png", "samples_e002.png", "interpolation.png"):
        Image.new("RGB", (62, 32), (200, 40, 40)).save(path / "images" / name)
    return path
