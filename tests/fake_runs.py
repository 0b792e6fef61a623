"""Run folders written by hand (meta.json, config.resolved.yaml, .hydra/overrides.yaml,
summary.json, metrics.jsonl, images), for report and list tests with known numbers."""

import copy
import json
from pathlib import Path
from typing import Any

import yaml
from omegaconf import OmegaConf
from PIL import Image

VAE_TASKS = {"reconstruction": "reconstruction", "digit": "classification"}

# What training writes: a resolved config, here of a small VAE experiment.
BASE_CONFIG: dict[str, Any] = {
    "name": "vae_mnist",
    "seed": 0,
    "device": "auto",
    "optimized_metric": None,
    "dataset": {"name": "synthetic", "n_train": 256, "root": None, "download": True},
    "backbone": {"name": "vae", "hidden_dims": [400], "latent_dim": 20, "beta": 1.0},
    "sharing": {"name": "hard", "shared_layers": None, "task_relation": 0.0},
    "weighting": {"name": "fixed"},
    "optim": {"name": "adam", "lr": 0.001},
    "trainer": {"epochs": 10, "batch_size": 128, "progress": True},
    "logger": {"jsonl": {}},
}
# Directions of the metrics mtlrun's tasks report, by metric name.
DIRECTIONS = {
    "loss": "min",
    "acc": "max",
    "nll": "min",
    "bce": "min",
    "kl": "min",
    "nelbo": "min",
    "nll_iw": "min",
    "mse": "min",
}
PRIMARY_METRIC = {"classification": "acc", "reconstruction": "nelbo", "regression": "mse"}


def resolved_config(overrides: list[str], tasks: dict[str, str]) -> dict[str, Any]:
    """BASE_CONFIG with `overrides` applied as Hydra would: `+experiment=X` names the run, a
    config group (`sharing=single_task`) replaces its node, a dotted key sets a value."""
    config = copy.deepcopy(BASE_CONFIG)
    config["tasks"] = {name: {"type": kind, "weight": 1.0} for name, kind in tasks.items()}
    for override in overrides:
        key, _, text = override.lstrip("+").partition("=")
        value = yaml.safe_load(text)
        if key == "experiment":
            config["name"] = value
        elif isinstance(config.get(key), dict) and "name" in config[key]:
            config[key] = {"name": value}
        else:
            *parents, leaf = key.split(".")
            node = config
            for parent in parents:
                node = node.setdefault(parent, {})
            node[leaf] = value
    return config


def make_run(
    path: Path,
    overrides: list[str],
    metrics: dict[str, float],
    *,
    tasks: dict[str, str] = VAE_TASKS,
    directions: dict[str, str] | None = None,
    primary_metrics: dict[str, str] | None = None,
    old_summary: bool = False,
    status: str = "completed",
    start_time: str = "2026-01-02T03:04:05+00:00",
) -> Path:
    """A run with two evaluations whose validation metrics end at `metrics`' values.
    `directions` adds to those of DIRECTIONS (for a task type mtlrun does not have);
    `primary_metrics` defaults to each known task type's headline metric; `old_summary` writes
    summary.json as an mtlrun older than metric directions did."""
    (path / ".hydra").mkdir(parents=True)
    (path / "images").mkdir()
    OmegaConf.save(OmegaConf.create(overrides), path / ".hydra" / "overrides.yaml")
    config = resolved_config(overrides, tasks)
    OmegaConf.save(OmegaConf.create(config), path / "config.resolved.yaml")
    meta = {
        "status": status,
        "seed": config["seed"],
        "start_time": start_time,
        "end_time": start_time,
    }
    (path / "meta.json").write_text(json.dumps(meta))
    if status != "completed":
        return path
    val_metrics = {key.replace("test/", "val/", 1): value for key, value in metrics.items()}
    summary: dict[str, Any] = {"metrics": metrics}
    if not old_summary:
        summary["val_metrics"] = val_metrics
        summary["directions"] = {
            key: DIRECTIONS[key.rsplit("/", 1)[-1]]
            for key in [*metrics, *val_metrics]
            if key.rsplit("/", 1)[-1] in DIRECTIONS
        } | (directions or {})
        summary["primary_metrics"] = (
            primary_metrics
            if primary_metrics is not None
            else {
                task: f"test/{task}/{PRIMARY_METRIC[kind]}"
                for task, kind in tasks.items()
                if kind in PRIMARY_METRIC
            }
        )
    (path / "summary.json").write_text(json.dumps(summary | {"epochs": 2, "seconds": 1.5}))
    records = [
        {"epoch": epoch, "step": 4 * epoch, "split": "val", "seconds": float(epoch)}
        | {key: value * (3 - epoch) for key, value in val_metrics.items()}
        for epoch in (1, 2)
    ]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    for name in ("recon_e001.png", "recon_e002.png", "samples_e002.png", "interpolation.png"):
        Image.new("RGB", (62, 32), (200, 40, 40)).save(path / "images" / name)
    return path
