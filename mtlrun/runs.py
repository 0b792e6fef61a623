"""Working with finished (or interrupted) run folders: their config, arguments, checkpoints."""

from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtlrun.checkpoint import load_checkpoint
from mtlrun.errors import UserError
from mtlrun.train import Experiment, build


def run_config(run_dir: Path) -> DictConfig:
    """The config a run was trained with, made to work on this machine: a data root that does
    not exist here falls back to $MTLRUN_DATA (or ./data), as for a fresh run."""
    for path in (run_dir / ".hydra" / "config.yaml", run_dir / "config.resolved.yaml"):
        if path.is_file():
            break
    else:
        raise UserError(
            f"{run_dir} is not a run folder (it has no .hydra/config.yaml or "
            "config.resolved.yaml); pass a folder under outputs/runs/"
        )
    try:
        cfg = OmegaConf.load(path)
    except (OSError, OmegaConfBaseException) as error:
        raise UserError(f"{path} is unreadable ({error}); the run cannot be rebuilt") from None
    root = cfg.dataset.get("root")
    if root and not Path(str(root)).expanduser().exists():
        cfg.dataset.root = None
    return cfg


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
            raise UserError(f"{arg!r} is not key=value; options: {', '.join(options) or 'none'}")
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


def load_trained(run_dir: Path, checkpoint: str, overrides: list[str]) -> tuple[Experiment, str]:
    """Rebuild a run's experiment and load the weights of checkpoints/<checkpoint>.pt; `best`
    falls back to `last` for runs without a validation split (they keep no best.pt). Returns
    the experiment and the checkpoint used."""
    if checkpoint not in ("best", "last"):
        raise UserError(f"checkpoint={checkpoint!r} is not known; choose one of: best, last")
    if checkpoint == "best" and not (run_dir / "checkpoints" / "best.pt").is_file():
        checkpoint = "last"
    cfg = apply_overrides(run_config(run_dir), overrides)
    path = run_dir / "checkpoints" / f"{checkpoint}.pt"
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
