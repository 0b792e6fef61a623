"""Rebuilding a run from its folder (eval, sample, resume, reproduce): its config as data, the
plug-ins it may import, its command-line arguments and a checkpoint's weights."""

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

import mtlrun.plugins as plugins
from mtlrun.checkpoint import load_checkpoint
from mtlrun.config import check_choice
from mtlrun.errors import ConfigError, UserError, listed
from mtlrun.experiment import Experiment, build
from mtlrun.runfolder import RunFolder, check_run_name, read_yaml


def run_config(run_dir: Path, allow_plugins: Sequence[str] = ()) -> DictConfig:
    """The config a run was trained with, as data: its resolved record (config.resolved.yaml;
    .hydra/config.yaml for a run without one), refused when it still holds an interpolation
    (`${oc.env:HOME}`, `${now:...}`: a run folder from someone else is not code to evaluate) or
    a `name` that is not one folder name. The plug-ins it used are imported only when they are
    installed or the user names them (`allow_plugins`, `mtlrun.plugins.load_for_run`). Made
    to work on this machine: a data root that does not exist here falls back to $MTLRUN_DATA
    (or ./data), and the MultiMNIST cache is this machine's ($MTLRUN_CACHE, else
    ~/.cache/mtlrun), as for a fresh run."""
    run = RunFolder(run_dir)
    for path in (run.config_path, run.hydra / "config.yaml"):
        if path.is_file():
            break
    else:
        raise UserError(
            f"{run_dir} is not a run folder (it has no config.resolved.yaml or "
            ".hydra/config.yaml); pass a folder under outputs/runs/"
        )
    cfg = read_yaml(path)
    if not isinstance(cfg, DictConfig):
        raise UserError(f"{path} is not a config (a YAML mapping); the run cannot be rebuilt")
    found = first_interpolation(OmegaConf.to_container(cfg, resolve=False))
    if found is not None:
        key, value = found
        raise UserError(
            f"{path}: {key}={value!r} is an interpolation, and a saved config is data that "
            "mtlrun never evaluates; write the value itself in its place"
        )
    try:
        check_run_name(str(cfg.get("name")))
    except ConfigError as error:
        raise UserError(f"{path}: {error}") from None
    listed = cfg.get("plugins") or []
    if isinstance(listed, str) or not all(isinstance(name, str) for name in listed):
        raise UserError(f"{path}: plugins={listed} is not a list of module names")
    plugins.load_for_run([*listed, *recorded_plugins(run_dir)], allow_plugins)
    dataset = cfg.get("dataset")
    if isinstance(dataset, DictConfig):
        root = dataset.get("root")
        if root and not Path(str(root)).expanduser().exists():
            dataset.root = None
        if dataset.get("cache_dir") is not None:
            dataset.cache_dir = None
    return cfg


def recorded_plugins(run_dir: Path) -> list[str]:
    """The plug-in modules meta.json says the run loaded (installed or named ones included,
    which its config does not list)."""
    try:
        recorded = RunFolder(run_dir).read_meta().get("plugins") or {}
    except (OSError, ValueError, AttributeError):
        return []  # no readable record: the config's list is all there is
    return [str(name) for name in recorded] if isinstance(recorded, dict) else []


def first_interpolation(node: Any, key: str = "") -> tuple[str, str] | None:
    """The first `${...}` in a config container (OmegaConf.to_container without resolving),
    as (dotted key, the text), evaluating none."""
    if isinstance(node, dict):
        children = [(f"{key}.{name}" if key else str(name), value) for name, value in node.items()]
    elif isinstance(node, list):
        children = [(f"{key}[{index}]", value) for index, value in enumerate(node)]
    else:
        return (key, node) if isinstance(node, str) and "${" in node else None
    for child_key, value in children:
        found = first_interpolation(value, child_key)
        if found is not None:
            return found
    return None


def split_arguments(
    args: list[str], options: dict[str, str]
) -> tuple[Path, dict[str, str], list[str]]:
    """`RUN [key=value ...]`: the run folder, this command's own options (with defaults), and
    the remaining `key=value` config overrides."""
    if not args or "=" in args[0] or args[0].startswith("-"):
        raise UserError("name a run folder first, e.g. outputs/runs/<date>/<time>_<name>")
    run_dir = Path(args[0])
    if not run_dir.is_dir():
        raise UserError(f"{run_dir} does not exist; pass a run folder (see `mtlrun list`)")
    chosen = dict(options)
    overrides = []
    for arg in args[1:]:
        if "=" not in arg:
            raise UserError(f"{arg!r} is not key=value; options: {listed(list(options))}")
        key, value = arg.split("=", 1)
        if key in options:
            chosen[key] = value
        else:
            overrides.append(arg)
    return run_dir, chosen, overrides


def apply_overrides(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    try:
        return OmegaConf.merge(cfg, OmegaConf.from_dotlist(overrides))
    except OmegaConfBaseException as error:
        raise UserError(f"bad override in {' '.join(overrides)}: {error}") from None


def load_trained(
    run_dir: Path, checkpoint: str, overrides: list[str], allow_plugins: Sequence[str] = ()
) -> tuple[Experiment, str]:
    """Rebuild a run's experiment and load the weights of checkpoints/<checkpoint>.pt. Returns
    the experiment and the checkpoint used: `best` is `last`, with a warning, for a run without
    a validation split (nothing selects a best model, and it keeps no best.pt); a run with one
    and no best.pt is refused, since its last weights are not the model selected."""
    check_choice("checkpoint", checkpoint, ("best", "last"))
    run = RunFolder(run_dir)
    cfg = apply_overrides(run_config(run_dir, allow_plugins), overrides)
    if checkpoint == "best" and not run.checkpoint("best").is_file():
        val_size = cfg.dataset.get("val_size") if isinstance(cfg.get("dataset"), DictConfig) else 1
        if val_size != 0:
            raise UserError(
                f"{run_dir} has no checkpoints/best.pt, which a run keeps from its first "
                "validation on: it stopped before one (resume it), or the file was removed; "
                "pass checkpoint=last for its last weights"
            )
        checkpoint = "last"
        print(
            f"mtlrun: warning: {run_dir} has no validation split (dataset.val_size=0), so no "
            "best.pt: using last.pt, its final weights",
            file=sys.stderr,
        )
    path = run.checkpoint(checkpoint)
    state = load_checkpoint(path)
    experiment = build(cfg)
    try:
        experiment.model.load_state_dict(state["model"])
    except (KeyError, RuntimeError) as error:
        reason = str(error).splitlines()[0]
        raise UserError(f"{path} does not fit the run's model ({reason})") from None
    experiment.model.eval()
    torch.manual_seed(int(cfg.seed))
    return experiment, checkpoint
