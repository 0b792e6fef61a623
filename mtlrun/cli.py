"""The `mtlrun` command: a dispatcher that strips the subcommand, then hands the rest of the
command line to that command's main (for `train`, a @hydra.main function), so Hydra's own
grammar (-m, --cfg, --help, hydra/launcher=...) works unchanged."""

import copy
import dataclasses
import difflib
import importlib
import os
import re
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from mtlrun import plugins
from mtlrun.config import config_dir
from mtlrun.errors import UserError
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


def fail(message: str, code: int = 2) -> None:
    print(f"mtlrun: error: {message}", file=sys.stderr)
    sys.exit(code)


# Hydra does one of these per command: sweep, print the config, print information.
MODE_FLAGS = ("-m", "--multirun", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


def check_one_mode(arguments: list[str]) -> None:
    modes = [arg for arg in arguments if arg in MODE_FLAGS]
    if len(modes) > 1:
        fail(
            f"{' and '.join(modes)} cannot go together: Hydra sweeps (-m), prints the config "
            "(--cfg) or prints information (--info), one at a time; drop one"
        )


def check_group_choices(overrides: list[str]) -> None:
    """Catch an unknown option of a config group (`backbone=vea`, `+experiment=nope`) before
    Hydra does, to say so in one line with the valid choices: Hydra's own list of the group's
    options, which holds mtlrun's YAML files, the schemas that its parts and plug-ins register
    in the ConfigStore, and the folders added with --config-dir or hydra.searchpath. Skipped
    under --config-path, which replaces mtlrun's configs folder: only Hydra reads that."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    from mtlrun.config import check_choice, register_parts
    from mtlrun.errors import ConfigError

    searchpath = searchpath_override(overrides)
    if searchpath is None or any(arg.startswith(("--config-path", "-cp")) for arg in overrides):
        return
    register_parts()
    parser = OverridesParser.create()
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        loader = GlobalHydra.instance().config_loader()

        def options(group: str, kind: ObjectType) -> list[str]:
            with warnings.catch_warnings():  # a missing search path folder: Hydra warns later
                warnings.simplefilter("ignore")
                return loader.get_group_options(
                    group, kind, config_name="train", overrides=searchpath
                )

        try:
            for arg in overrides:
                if arg.startswith("-") or "=" not in arg:
                    continue
                try:
                    (override,) = parser.parse_overrides([arg])
                except HydraException:
                    continue  # broken grammar: check_composes reports it
                group = override.key_or_group
                parent, _, leaf = group.rpartition("/")
                if override.is_delete() or leaf not in options(parent, ObjectType.GROUP):
                    continue  # a key, not a group (`backbone.latent_dim=8`)
                choices = options(group, ObjectType.CONFIG)
                for option in chosen_options(override):
                    check_choice(group, option, choices)
        except ConfigError as error:
            fail(str(error))
        except HydraException:
            return  # a search path Hydra cannot read: it says so itself


def chosen_options(override: Any) -> list[str]:
    """The options a parsed group override picks: one, a list (`logger=[csv,tensorboard]`), or
    those of a sweep (`weighting=equal,pcgrad`); none for `null` and for a `glob(...)` sweep,
    which picks among the existing options only."""
    from hydra.core.override_parser.types import QuotedString, ValueType

    if override.value_type == ValueType.GLOB_CHOICE_SWEEP or override.is_interval_sweep():
        return []
    values = list(override.sweep_iterator()) if override.is_sweep_override() else [override.value()]
    names: list[str] = []
    while values:
        value = values.pop(0)
        if isinstance(value, list):
            values = [*value, *values]
        elif value is not None:
            names.append(value.text if isinstance(value, QuotedString) else str(value))
    return names


def searchpath_override(overrides: list[str]) -> list[str] | None:
    """`hydra.searchpath=[...]` with the config folders the user adds to Hydra's search path:
    those of a hydra.searchpath override (plug-ins' included) and of --config-dir (-cd). None
    when a --config-dir folder is missing, which Hydra refuses in its own words."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    folders: list[str] = []
    for index, arg in enumerate(overrides):
        if arg.startswith("hydra.searchpath="):
            try:
                (override,) = OverridesParser.create().parse_overrides([arg])
            except HydraException:
                continue  # broken grammar: check_composes reports it
            value = override.value()
            folders += [str(folder) for folder in value] if isinstance(value, list) else []
        for flag in ("--config-dir", "-cd"):
            folder = None
            if arg == flag and index + 1 < len(overrides):
                folder = overrides[index + 1]
            elif arg.startswith(f"{flag}="):
                folder = arg.split("=", 1)[1]
            if folder is not None:
                if not os.path.isdir(folder):
                    return None
                folders.append(f"file://{os.path.abspath(folder)}")
    if not folders:
        return []
    return [f"hydra.searchpath=[{','.join(map(quoted, folders))}]"]


def quoted(text: str) -> str:
    """`text` as a quoted string of Hydra's override grammar (a folder with a space or comma)."""
    text = re.sub(r"(\\+)(?='|$)", lambda match: match.group(1) * 2, text)
    return "'" + text.replace("'", "\\'") + "'"


def first_job(overrides: list[str]) -> list[str] | None:
    """The overrides of a sweep's first job (`latent_dim=2,8,32` → `latent_dim=2`, an
    `interval(a, b)` → its start), Hydra's own overrides left out; None when the command line
    holds Hydra flags (`--cfg job`, `-cd DIR`) that only Hydra can read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep, ValueType

    if any(arg.startswith("-") and arg not in ("-m", "--multirun") for arg in overrides):
        return None
    kept = [arg for arg in overrides if not arg.startswith(("-", "hydra"))]
    job = []
    for override in OverridesParser.create().parse_overrides(kept):
        if not override.is_sweep_override():
            job.append(override.input_line)
        elif override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue  # a glob() sweep needs the config loader to enumerate: Hydra checks it
        elif isinstance(override.value(), IntervalSweep):
            job.append(f"{override.get_key_element()}={override.value().start}")
        elif override.is_choice_sweep() or override.is_range_sweep():
            first = next(iter(override.sweep_string_iterator()))
            job.append(f"{override.get_key_element()}={first}")
    return job


def check_composes(overrides: list[str]) -> None:
    """Compose the config of a run (or of a sweep's first job) before Hydra does, to report a
    bad override (a misspelt key, a value of the wrong type, broken override grammar) or a bad
    top-level value (`seed`, `name`, `tasks`) in one line; Hydra prints several."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from mtlrun.config import refused_value, register_parts
    from mtlrun.errors import ConfigError

    register_parts()
    job: list[str] | None = None
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        try:
            job = first_job(overrides)
            if job is None:
                return
            hydra_keys = ("hydra.run.", "hydra.sweep.", "hydra.searchpath")
            folders = [arg for arg in overrides if arg.startswith(hydra_keys)]
            cfg = compose("train", overrides=[*job, *folders], return_hydra_config=True)
            check_sweep_values(cfg, overrides)
        except (HydraException, OmegaConfBaseException) as error:
            missing = re.match(r"Could not override '([^']+)'", str(error))
            if missing and job:
                fail(unknown_key(missing.group(1), job))
            refused = refused_value(error)  # a value a part's schema refuses: key, value, why
            if refused:
                fail(refused)
            lines = [line.strip() for line in str(error).splitlines() if line.strip()]
            details = ("full_key", "object_type", "See https://hydra.cc")
            kept = [line.rstrip(".") for line in lines if not line.startswith(details)]
            fail("; ".join(kept))
    plugins.load_for_config(cfg.plugins)  # those an experiment lists, before their parts
    from mtlrun.config import check_run_keys
    from mtlrun.experiment import check_config

    multirun = any(arg in ("-m", "--multirun") for arg in overrides)
    try:
        # A run's every value; a sweep's top-level keys only: a value out of range fails its
        # own job, and the sweep goes on (README: Configs).
        check_run_keys(cfg) if multirun else check_config(cfg)
    except ConfigError as error:
        fail(str(error))
    check_fresh_folder(cfg, multirun=multirun)


def check_sweep_values(cfg: DictConfig, overrides: list[str]) -> None:
    """Every value of a sweep over a key of a part's schema (`backbone.latent_dim=8,abc`) set
    into the first job's config, where the schema checks its type as Hydra would when that job
    starts: a wrong one fails here in one line, not in Hydra's words before any job runs."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    parser = OverridesParser.create()
    kept = [arg for arg in overrides if not arg.startswith(("-", "hydra"))]
    trial = copy.deepcopy(cfg)
    for override in parser.parse_overrides(kept):
        key = override.key_or_group
        if not (override.is_choice_sweep() or override.is_range_sweep()) or "." not in key:
            continue
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue
        if not dataclasses.is_dataclass(OmegaConf.get_type(trial, key.split(".")[0])):
            continue  # no schema at compose time: the job's own build checks it
        for text in override.sweep_string_iterator():
            (single,) = parser.parse_overrides([f"{key}={text}"])
            added = override.is_add() or override.is_force_add()
            OmegaConf.update(trial, key, single.value(), merge=True, force_add=added)


def check_fresh_folder(cfg: DictConfig, multirun: bool) -> None:
    """A new run never writes into an existing run's folder, as it would with a fixed
    `hydra.run.dir` (or `hydra.sweep.dir`) given twice: refused before Hydra writes `.hydra/`
    into it. A folder that cannot be worked out here (an interpolation only Hydra resolves) is
    checked again by `mtlrun train` itself, before it writes anything of its own."""
    from mtlrun.runfolder import existing_run_message

    try:
        folder = Path(
            str(OmegaConf.select(cfg, "hydra.sweep.dir" if multirun else "hydra.run.dir"))
        )
    except Exception:  # a resolver that only Hydra's job setup provides
        return
    message = existing_run_message(folder, sweep=multirun)
    if message:
        fail(message)


def unknown_key(key: str, job: list[str]) -> str:
    """The message for an override of a key the config does not have: the closest real key
    (`trainer.epoch` → `trainer.epochs`), from the config composed without that override.
    Hydra's own advice, `+key=value`, only adds a key that the part's schema then refuses."""
    from hydra import compose

    rest = [arg for arg in job if arg.split("=", 1)[0].lstrip("+~") != key]
    try:
        keys = config_keys(OmegaConf.to_container(compose("train", overrides=rest)))
    except Exception:  # another bad override: no suggestion, the message still stands
        keys = []
    # Keys as deep as the misspelt one: `backbone.zzz` is not a misspelt `backbone`.
    keys = [known for known in keys if known.count(".") == key.count(".")]
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
    if match:
        return f"{key} is not a key of the config; did you mean {match[0]}?"
    return f"{key} is not a key of the config; see its keys with `mtlrun train --cfg job`"


def config_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config container: `trainer`, `trainer.epochs`, ..."""
    if not isinstance(node, dict):
        return []
    keys = []
    for name, value in node.items():
        key = f"{prefix}{name}"
        keys += [key, *config_keys(value, f"{key}.")]
    return keys


def main() -> None:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    command = args[0]
    if command not in COMMANDS:
        fail(f"unknown command {command!r}; choose one of: {', '.join(COMMANDS)}")
    os.environ["MTLRUN_COMMAND"] = shlex.join(["mtlrun", *args])
    try:
        arguments = load_plugins(command, args[1:])
        if command == "train":
            check_one_mode(arguments)
            arguments = with_plugin_configs(arguments)
            check_group_choices(arguments)
            check_composes(arguments)
        with torchrun_rank(command, arguments) as arguments:
            sys.argv = [f"mtlrun {command}", *arguments]
            module = importlib.import_module(f"mtlrun.commands.{COMMANDS[command][0]}")
            module.main()
    except UserError as error:
        fail(str(error))
    except OSError as error:  # eval, sample, report, list: a disk that fills up or refuses
        fault = disk_fault(error, Path.cwd())
        if fault is None:
            raise
        fail(f"{fault}; free it, or pass out=DIR to write elsewhere")
    except KeyboardInterrupt:  # before training started (a run stopped later says so itself)
        print("mtlrun: interrupted", file=sys.stderr)
        sys.exit(130)


@contextmanager
def torchrun_rank(command: str, arguments: list[str]) -> Iterator[list[str]]:
    """The arguments, as one rank of `torchrun --nproc-per-node N -m mtlrun train ...` runs
    them: one run, whose folder rank 0's Hydra makes. The other ranks' Hydra writes into a
    temporary folder, removed at the end; training gets rank 0's folder (mtlrun.distributed)."""
    if int(os.environ.get("WORLD_SIZE", "1")) == 1:
        yield arguments
        return
    if command != "train":
        raise UserError(
            f"under torchrun only `mtlrun train` runs; run `mtlrun {command}` without torchrun "
            "(`mtlrun resume` starts the run's trainer.devices processes itself)"
        )
    if any(arg in ("-m", "--multirun") for arg in arguments):
        raise UserError(
            "a sweep (-m) cannot run under torchrun; sweep runs that each use several "
            "processes with `mtlrun train -m ... trainer.devices=N`"
        )
    if os.environ.get("RANK", "0") == "0":
        yield arguments
        return
    scratch = tempfile.mkdtemp(prefix=f"mtlrun-rank{os.environ['RANK']}-")
    try:
        yield [*arguments, f"hydra.run.dir={scratch}", "hydra.output_subdir=null"]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def load_plugins(command: str, arguments: list[str]) -> list[str]:
    """Import the plug-ins before anything reads a registry: for `train`, the installed and
    named ones and those its `plugins=` override lists; for the commands that rebuild a run,
    `--plugins` adds to the modules the user allows (`$MTLRUN_PLUGINS`), and the run's own
    list is checked against them when its config is read. Returns the remaining arguments."""
    if command == "train":
        plugins.load_for_config(listed_plugins(arguments))
        return arguments
    arguments, option = plugins.split_option(arguments)
    if option:
        named = [os.environ.get(plugins.ENVIRONMENT, ""), option]
        os.environ[plugins.ENVIRONMENT] = ",".join(name for name in named if name)
    plugins.load(plugins.installed())
    return arguments


def listed_plugins(overrides: list[str]) -> list[str]:
    """The modules of a `plugins=[a,b]` (or `+plugins=...`) override."""
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "plugins":
            return [name.strip() for name in value.strip("[]").split(",") if name.strip()]
    return []


def with_plugin_configs(overrides: list[str]) -> list[str]:
    """The overrides with the loaded plug-ins' `configs/` folders on Hydra's search path
    (after the user's own `hydra.searchpath`, if they gave one)."""
    folders = [f"file://{folder}" for folder in plugins.config_dirs()]
    if not folders:
        return overrides
    for index, arg in enumerate(overrides):
        if arg.startswith("hydra.searchpath="):
            theirs = arg.split("=", 1)[1].strip().strip("[]")
            merged = ",".join(path for path in [theirs, *folders] if path)
            return [*overrides[:index], f"hydra.searchpath=[{merged}]", *overrides[index + 1 :]]
    # Among the user's overrides, not after a flag: Hydra's parser takes the overrides as one
    # run of arguments only (`a=1 -m b=2` and `a=1 --cfg job b=2` are refused).
    at = first_override(overrides)
    return [*overrides[:at], f"hydra.searchpath=[{','.join(folders)}]", *overrides[at:]]


# Hydra's flags that take the next argument as their value (`--cfg job`, `-cd DIR`).
VALUED_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name"}
VALUED_FLAGS |= {"-cn", "--config-dir", "-cd", "--experimental-rerun", "--info", "-i"}


def first_override(arguments: list[str]) -> int:
    """The index of the first override (key=value) in a Hydra command line, past its flags and
    their values; the length of the line when it has none."""
    index = 0
    while index < len(arguments):
        arg = arguments[index]
        if not arg.startswith("-"):
            return index
        has_value = index + 1 < len(arguments) and not arguments[index + 1].startswith("-")
        index += 2 if arg in VALUED_FLAGS and has_value else 1
    return len(arguments)
