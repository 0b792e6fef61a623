"""The Python API, for notebooks and scripts: the same composition, run folder and training as
`mtlrun train`, and a finished run loaded back with its weights.

    import mtlrun
    run = mtlrun.train(["+experiment=vae_mnist", "trainer.epochs=1"])
    run.metrics["test/reconstruction/nelbo"]
    model = mtlrun.load_run(run.path).model

Plug-ins register their parts with `mtlrun.register` (see `Registration`).
"""

import shlex
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from mtlrun.compose import compose
from mtlrun.errors import UserError
from mtlrun.parts import (
    BACKBONES,
    DATASETS,
    LOGGERS,
    OPTIMIZERS,
    SHARING,
    TASKS,
    WEIGHTINGS,
)
from mtlrun.runfolder import RunFolder, disk_fault, new_run_dir

if TYPE_CHECKING:
    from mtlrun.data import Data
    from mtlrun.sharing import MultiTaskModel
    from mtlrun.tasks import Task

__all__ = ["LoadedRun", "Registration", "Run", "UserError", "compose", "load_run", "register"]


@dataclass(frozen=True)
class Registration:
    """`from mtlrun import register`: one decorator per kind of part, each used as
    `@register.backbone("name", schema=MyConfig)`, where the schema is a dataclass of the
    part's options (its defaults; a `check(self, key)` method may refuse values in one line by
    raising `mtlrun.errors.ConfigError`). The config then chooses the part by name
    (`backbone=name`) and may set its options (`backbone.width=64`). What each decorates:

    - dataset:   `fn(config) -> mtlrun.data.registry.RawData`
    - backbone:  `fn(config, info: DatasetInfo) -> mtlrun.backbones.Backbone`
    - sharing:   `fn(config, make_backbone, tasks) -> mtlrun.sharing.MultiTaskModel`
    - task:      a `mtlrun.tasks.Task` subclass, built as `cls(config, name)`; the schema
                 needs `type: str` and `weight: float = 1.0` (subclass `mtlrun.tasks.TaskConfig`)
    - weighting: a `mtlrun.weighting.Weighting` subclass, built as `cls(config, tasks, model)`
    - optimizer: `fn(config, parameter_groups) -> torch.optim.Optimizer`; the schema
                 subclasses `mtlrun.optim.OptimConfig` (lr, weight_decay, schedule)
    - logger:    a `mtlrun.loggers.Logger` subclass, built as `cls(config, run_dir)`
    """

    dataset: Callable[..., Callable[[Any], Any]]
    backbone: Callable[..., Callable[[Any], Any]]
    sharing: Callable[..., Callable[[Any], Any]]
    task: Callable[..., Callable[[Any], Any]]
    weighting: Callable[..., Callable[[Any], Any]]
    optimizer: Callable[..., Callable[[Any], Any]]
    logger: Callable[..., Callable[[Any], Any]]


register = Registration(
    dataset=DATASETS.register,
    backbone=BACKBONES.register,
    sharing=SHARING.register,
    task=TASKS.register,
    weighting=WEIGHTINGS.register,
    optimizer=OPTIMIZERS.register,
    logger=LOGGERS.register,
)


@dataclass
class Run:
    """A finished run: its folder and its summary.json."""

    path: Path
    summary: dict[str, Any]

    @property
    def metrics(self) -> dict[str, float]:
        """The final model's test metrics, flat: `test/<task>/<metric>` and `test/loss`."""
        return self.summary["metrics"]


@dataclass
class LoadedRun:
    """A run rebuilt from its folder, with a checkpoint's weights; the model in eval mode."""

    path: Path
    config: DictConfig
    model: "MultiTaskModel"
    data: "Data"
    tasks: "list[Task]"
    checkpoint: str  # the checkpoint loaded: best, or last when the run kept no best.pt


def train(
    overrides: Sequence[str] = (),
    *,
    config_dir: str | Path | None = None,
    output_dir: str | Path | None = None,
) -> Run:
    """Train one run, as `mtlrun train OVERRIDES` does, into a new folder under
    `output_dir`/runs (default ./outputs/runs); `config_dir` is a folder of your own config
    groups and experiments, searched before mtlrun's (as `--config-dir`). A mistake in the
    overrides, the config or the data raises `mtlrun.UserError`, whose message is the line
    `mtlrun train` prints, and leaves no run folder; Ctrl-C raises `KeyboardInterrupt` (resume
    the run with `mtlrun resume`)."""
    from mtlrun.lifecycle import train as train_run

    cfg = compose(overrides, config_dir)
    root = Path(output_dir or "outputs")
    # A mistake found while building the run removes its folder, and `root` too if made here.
    keep = root.resolve() if root.is_dir() else root.resolve().parent
    try:
        root.mkdir(parents=True, exist_ok=True)
        run_dir = new_run_dir(str(cfg.name), root).resolve()
    except (FileExistsError, NotADirectoryError):
        raise UserError(f"output_dir={root} is a file, or inside one; pass a folder") from None
    except OSError as error:
        fault = disk_fault(error, root) or f"cannot write in {root}: {error.strerror}"
        raise UserError(f"output_dir={root}: {fault}; pass another output_dir") from None
    RunFolder(run_dir).record_composition(cfg, list(overrides))
    command = shlex.join(["mtlrun", "train", *map(str, overrides)])
    try:
        return Run(run_dir, train_run(cfg, run_dir, command=command))
    except (UserError, KeyboardInterrupt):
        RunFolder(run_dir).remove_if_unstarted(keep=keep)
        raise


def load_run(
    path: str | Path,
    checkpoint: str = "best",
    *,
    device: str | None = None,
    plugins: Sequence[str] = (),
) -> LoadedRun:
    """A run folder's model with the weights of `checkpoint` (best or last), its data and
    tasks, as `mtlrun eval` rebuilds them; `device` overrides the run's (e.g. "cpu").
    `best` is refused for a run with a validation split that lacks best.pt (its last weights
    are not the model it selected), and is `last`, with a warning, for a run without one;
    `.checkpoint` says which was loaded. The plug-ins the run used are imported when
    installed, already imported, or in `plugins` (as `--plugins`)."""
    from mtlrun.rebuild import load_trained

    run_dir = Path(path)
    overrides = [] if device is None else [f"device={device}"]
    experiment, used = load_trained(run_dir, checkpoint, overrides, plugins)
    experiment.model.eval()
    return LoadedRun(
        run_dir, experiment.cfg, experiment.model, experiment.data, experiment.tasks, used
    )
