"""The `mtlrun` command: a dispatcher that strips the subcommand, then hands the rest of the
command line to that command's @hydra.main function, so Hydra's own grammar (-m, --cfg,
--help, hydra/launcher=...) works unchanged."""

import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from mtlrun.config import config_dir
from mtlrun.errors import UserError

USAGE = """usage: mtlrun COMMAND [hydra overrides]

commands:
  train      train a model: mtlrun train +experiment=vae_mnist [key=value ...] [-m]

Everything after the command is Hydra's override grammar: key=value, +group=option,
-m (multirun / sweeps), --cfg job, --help, hydra/launcher=joblib.
Experiments: {experiments}
"""


def fail(message: str, code: int = 2) -> None:
    print(f"mtlrun: error: {message}", file=sys.stderr)
    sys.exit(code)


def check_group_choices(overrides: list[str]) -> None:
    """Catch an unknown option of a config group (`backbone=vea`, `+experiment=nope`) before
    Hydra does, to say so in one line with the valid choices. Skipped when the user adds their
    own config folders, whose options only Hydra can see."""
    if any(arg.startswith(("--config-dir", "-cd", "hydra.searchpath")) for arg in overrides):
        return
    root = config_dir()
    groups = {p.name for p in root.iterdir() if p.is_dir()}
    for arg in overrides:
        if arg.startswith("-") or "=" not in arg:
            continue
        key, value = arg.split("=", 1)
        group = key.lstrip("+~")
        if group not in groups or not value:
            continue
        choices = sorted(p.stem for p in (root / group).glob("*.yaml"))
        for option in value.strip("[]").split(","):
            option = option.strip()
            if option and option not in choices and not option.startswith(("glob(", "range(")):
                fail(f"{group}={option!r} is not known; choose one of: {', '.join(choices)}")


def train_command() -> None:
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import DictConfig

    from mtlrun.train import train

    @hydra.main(version_base="1.3", config_path=str(config_dir()), config_name="train")
    def main(cfg: DictConfig) -> float | None:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        try:
            train(cfg, run_dir)
        except UserError as error:
            print(f"mtlrun: error: {error}", file=sys.stderr)
            if hydra_cfg.mode == RunMode.MULTIRUN:
                return None  # one failed job does not stop the sweep
            sys.exit(2)
        except KeyboardInterrupt:
            print(run_dir)
            sys.exit(130)
        print(run_dir)
        return None

    main()


COMMANDS: dict[str, Callable[[], None]] = {"train": train_command}


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        experiments = ", ".join(
            sorted(p.stem for p in (config_dir() / "experiment").glob("*.yaml"))
        )
        print(USAGE.format(experiments=experiments))
        sys.exit(0 if args else 2)
    command = args[0]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}")
    os.environ["MTLRUN_COMMAND"] = shlex.join(["mtlrun", *args])
    check_group_choices(args[1:])
    sys.argv = [f"mtlrun {command}", *args[1:]]
    COMMANDS[command]()
