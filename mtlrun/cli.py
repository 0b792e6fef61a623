"""The `mtlrun` command: a dispatcher that strips the subcommand, then hands the rest of the
command line to that command's main (for `train`, a @hydra.main function), so Hydra's own
grammar (-m, --cfg, --help, hydra/launcher=...) works unchanged.

`mtlrun train` loads the plug-ins once and lets Hydra compose; `mtlrun.compose.Preflight`
validates before Hydra makes a folder. Hydra's errors reach this module as exceptions
(HYDRA_FULL_ERROR), which it prints as one line. Nothing here imports torch."""

import importlib
import os
import shlex
import sys
from pathlib import Path

from omegaconf.errors import OmegaConfBaseException

from mtlrun import compose, plugins, torchrun
from mtlrun.config import config_dir
from mtlrun.errors import UserError, fail, listed
from mtlrun.runfolder import disk_fault

# name: (module under mtlrun.commands, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("train", "train a model: mtlrun train +experiment=vae_mnist [key=value ...] [-m]"),
    "reproduce": ("reproduce", "rerun RUN from its saved config and compare: mtlrun reproduce RUN"),
    "resume": ("resume", "continue an interrupted run in its folder: mtlrun resume RUN"),
    "eval": ("eval", "evaluate a checkpoint again: mtlrun eval RUN [checkpoint=best|last]"),
    "sample": ("sample", "image grids from a trained model: mtlrun sample RUN [n=64]"),
    "report": ("report", "table, curves, images and Δm for runs: mtlrun report DIR"),
    "list": ("list", "the runs under DIR, one line each: mtlrun list [DIR]"),
}


def usage() -> str:
    plugins.load_for_config([])  # installed and named plug-ins may ship experiments
    folders = [config_dir(), *plugins.config_dirs()]
    experiments = sorted({p.stem for f in folders for p in (f / "experiment").glob("*.yaml")})
    lines = ["usage: mtlrun COMMAND [arguments]", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, (_, text) in COMMANDS.items()]
    lines += [
        "",
        "After `train`, everything is Hydra's override grammar: key=value, +group=option,",
        "-m (sweeps), --cfg job, --help, hydra/launcher=joblib.",
        f"Experiments (+experiment=NAME): {', '.join(experiments)}",
    ]
    return "\n".join(lines)


# Hydra does one of these per command: run, sweep, print the config, print information.
MODE_FLAGS = ("-r", "--run", "-m", "--multirun", "--cfg", "-c", "--info", "-i")
MODE_FLAGS += ("--shell-completion", "-sc")
SHELLS = ("bash", "fish", "zsh")  # Hydra's completion plug-ins
HYDRA_PACKAGES = ("hydra", "_global_")  # `-p` values that name no key of the job's config


def train_arguments(arguments: list[str]) -> list[str]:
    """`mtlrun train`'s arguments as Hydra's parser takes them, its flags first, then the
    overrides (flags may come anywhere), checked with that parser first: a flag it refuses
    (argparse's usage and error), a flag that Hydra would end in a traceback (no
    `--experimental-rerun` file, `--shell-completion` without a shell) or two modes at once
    are one line."""
    from hydra._internal.utils import get_args_parser

    flags, overrides = compose.split_flags(arguments)
    modes = [arg for arg in flags if arg in MODE_FLAGS]
    if len(modes) > 1:
        raise UserError(
            f"{' and '.join(modes)} cannot go together: Hydra runs (--run), sweeps (-m), "
            "prints the config (--cfg) or prints information (--info), one at a time; drop one"
        )
    parser = get_args_parser()
    parser.prog = "mtlrun train"

    def refuse(message: str) -> None:
        raise UserError(f"{message}; see `mtlrun train --help`")

    parser.error = refuse  # type: ignore[method-assign]  # argparse prints its usage, then exits
    parsed = parser.parse_args([*flags, *overrides])
    rerun = parsed.experimental_rerun
    if rerun is not None and not Path(rerun).is_file():
        raise UserError(
            f"--experimental-rerun {rerun}: no such file; pass a run's .hydra/config.pickle"
        )
    package = parsed.package
    if parsed.cfg in ("job", "all") and package and package.split(".")[0] not in HYDRA_PACKAGES:
        keys = compose.job_keys(compose.first_job(overrides))
        if keys and package not in keys:  # Hydra says "package not found" and exits 1
            raise UserError(f"-p {package}: {compose.not_a_key(package, keys)}")
    if parsed.shell_completion:
        keys = [override.partition("=")[0] for override in overrides]
        shell = next((o.partition("=")[2] for o in overrides if o.startswith("install")), "bash")
        if sorted(keys) not in (["install"], ["uninstall"], ["query"]) or shell not in SHELLS:
            raise UserError(
                "--shell-completion takes one of install=SHELL, uninstall=SHELL or query=SHELL, "
                f"SHELL one of: {', '.join(SHELLS)}"
            )
    return [*flags, *overrides]


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    command = args[0]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of: {listed(list(COMMANDS))}")
    os.environ["MTLRUN_COMMAND"] = shlex.join(["mtlrun", *args])
    # Hydra raises its errors instead of printing several lines: they are printed as one here.
    os.environ["HYDRA_FULL_ERROR"] = "1"
    from hydra.errors import HydraException

    arguments = args[1:]
    try:
        if command == "train":
            arguments = train_arguments(arguments)
        arguments = load_plugins(command, arguments)
        with torchrun.rank_arguments(command, arguments) as arguments:
            sys.argv = [f"mtlrun {command}", *arguments]
            module = importlib.import_module(f"mtlrun.commands.{COMMANDS[command][0]}")
            module.main()
    except UserError as error:
        fail(str(error))
    except (HydraException, OmegaConfBaseException) as error:
        fail(compose.compose_error_line(error, arguments))
    except ValueError as error:
        if str(error) != "No trials are completed yet.":
            raise
        # Optuna's, when every trial of a search failed: each job has said why already.
        fail("no trial of the search completed: every job failed, each with its error above", 1)
    except OSError as error:  # eval, sample, report, list: a disk that fills up or refuses
        fault = disk_fault(error, Path.cwd())
        if fault is None:
            raise
        fail(f"{fault}; free it, or pass out=DIR to write elsewhere")
    except KeyboardInterrupt:  # before training started (a run stopped later says so itself)
        print("mtlrun: interrupted", file=sys.stderr)
        sys.exit(130)


def load_plugins(command: str, arguments: list[str]) -> list[str]:
    """Import the plug-ins before anything reads a registry: for `train`, the installed and
    named ones and those its `plugins=` override lists; for the commands that rebuild a run,
    `--plugins` adds to the modules the user allows (`$MTLRUN_PLUGINS`), and the run's own
    list is checked against them when its config is read. Returns the remaining arguments."""
    if command == "train":
        compose.load_plugins(arguments)
        return arguments
    arguments, option = plugins.split_option(arguments)
    if option:
        named = [os.environ.get(plugins.ENVIRONMENT, ""), option]
        os.environ[plugins.ENVIRONMENT] = ",".join(name for name in named if name)
    plugins.load_installed()
    return arguments
