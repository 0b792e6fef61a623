"""The one path from a command line to a validated config, for `mtlrun train`, `mtlrun.train`,
`reproduce`, `resume` and torchrun's ranks: plug-ins loaded once, the config composed once per
job, and every check that needs no data made before any run folder exists.

`mtlrun train` composes with Hydra's own main, so that sweeps, launchers and `--cfg` keep
working; `Preflight`, a Hydra callback, validates what Hydra composed before Hydra makes a
folder (every job of a sweep, before the first starts). The Python API composes with Hydra's
compose API and calls `validate` itself. Either way a mistake is one line: Hydra's and
OmegaConf's errors become mtlrun's (`compose_error_line`). Imports no torch."""

import difflib
import itertools
import os
import re
import shlex
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

import mtlrun.plugins as plugins
from mtlrun.config import (
    GROUPS_HELP,
    check_choice,
    check_integer,
    config_dir,
    parse,
    refused_value,
)
from mtlrun.errors import ConfigError, UserError, fail, listed
from mtlrun.parts import CHOSEN, LOGGERS, TASKS, task_configs
from mtlrun.runfolder import check_run_name, existing_run_message
from mtlrun.schemas.trainer import TrainerConfig


def load_plugins(overrides: list[str]) -> None:
    """Import the installed and named plug-ins and those a `plugins=[...]` override lists, once,
    before anything reads a registry or Hydra starts (which puts their `configs/` folders on
    its search path: hydra_plugins/mtlrun_plugin_configs)."""
    plugins.load_for_config(listed_plugins(overrides))


def compose(overrides: list[str], config_folder: str | Path | None = None) -> DictConfig:
    """The config `mtlrun train OVERRIDES` runs, composed and validated (`config_folder`: a
    folder of the user's own config groups, searched before mtlrun's, as `--config-dir`).
    Raises a `UserError` whose message is the line `mtlrun train` prints."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException

    if not isinstance(overrides, list | tuple) or not all(isinstance(o, str) for o in overrides):
        raise UserError(
            f"overrides={overrides!r} must be a list of strings, e.g. ['+experiment=vae_mnist']"
        )
    if any(o in ("-m", "--multirun") for o in overrides):
        raise UserError(
            "mtlrun.train runs one config; sweep with `mtlrun train -m ...` on the command line, "
            "or call mtlrun.train once per config"
        )
    flag = next((o for o in overrides if o.startswith("-")), None)
    if flag is not None:
        raise UserError(
            f"{flag} is a flag of the command line; mtlrun.train takes overrides (key=value) "
            "and config_dir= for a folder of your own configs"
        )
    if config_folder is not None:
        folder = Path(config_folder).resolve()
        if not folder.is_dir():
            raise ConfigError(f"config_dir={config_folder} is not a folder")
        overrides = [*overrides, f"hydra.searchpath=[file://{folder}]"]
    load_plugins(list(overrides))
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        try:
            cfg = hydra_compose("train", overrides=overrides)
        except (HydraException, OmegaConfBaseException) as error:
            raise ConfigError(compose_error_line(error, overrides)) from None
    drop_deleted_task_settings(cfg, overrides)
    validate(cfg)
    return cfg


# `~task@tasks.NAME` (or `task@tasks.NAME=null`): a task taken out of the defaults.
DELETED_TASK = re.compile(r"^(?:~task@tasks\.([\w-]+)(?:=.*)?|\+*task@tasks\.([\w-]+)=null)$")


def drop_deleted_task_settings(cfg: DictConfig, overrides: list[str]) -> None:
    """Remove what is left of a task the command line took out: `~task@tasks.y3` deletes the
    task from the defaults, but the settings an experiment gives it in its body
    (`tasks.y3.weight`) stay, a node without a type. Settings the command line gives it
    itself stay, and are refused as a task without a type."""
    tasks = cfg.get("tasks")
    if not isinstance(tasks, DictConfig):
        return
    for override in overrides:
        match = DELETED_TASK.match(override)
        name = match and (match.group(1) or match.group(2))
        node = tasks.get(name) if name else None
        if not isinstance(node, DictConfig) or "type" in node:
            continue
        if not any(o.lstrip("+~").startswith(f"tasks.{name}.") for o in overrides):
            with open_dict(tasks):
                del tasks[name]


def validate(cfg: DictConfig, sweeper_direction: str | None = None) -> None:
    """Every value of a run config against its schema, and the plug-ins it lists imported,
    before any data loads or any file is written: what is left for building the run are the
    checks that need the data (a task's label, a backbone's input shape)."""
    check_run_keys(cfg)
    plugins.load_for_config(cfg.get("plugins") or [])
    parse(TrainerConfig, cfg.trainer, "trainer")
    for key, registry in CHOSEN.items():
        registry.config(str(cfg[key].name), cfg[key], key)
    for name, node in (cfg.get("logger") or {}).items():
        LOGGERS.config(str(name), node, f"logger.{name}")
    task_configs(cfg.tasks)
    check_optimized_metric(cfg, sweeper_direction)


def check_run_keys(cfg: DictConfig) -> None:
    """The top-level keys of train.yaml that no part's schema owns: `seed`, `name`, `tasks`,
    `plugins`."""
    check_integer("seed", cfg.get("seed"))
    check_run_name(str(cfg.get("name")))
    if not cfg.get("tasks"):
        raise ConfigError("tasks is empty; add one, e.g. +task@tasks.reconstruction=reconstruction")
    listed = cfg.get("plugins") or []
    if isinstance(listed, str) or not all(isinstance(name, str) for name in listed):
        raise ConfigError(f"plugins={listed} must be a list of module names, e.g. [my_lab.mtl]")


def check_optimized_metric(cfg: DictConfig, sweeper_direction: str | None = None) -> None:
    """`optimized_metric` (what a hyperparameter sweeper minimises or maximises) must be a
    validation metric this config reports: selecting on the test split would make the test
    numbers of the chosen run optimistic. The sweeper's direction must agree with the metric's;
    checked before training, so a mistake costs no trials."""
    name = cfg.get("optimized_metric")
    if name is None:
        return
    if str(name).startswith("test/"):
        raise ConfigError(
            f"optimized_metric={name} is a test metric; selecting on the test split biases the "
            f"test numbers, so optimise the validation metric {'val/' + name[5:]} instead"
        )
    if not cfg.dataset.get("val_size", 1):
        raise ConfigError(
            f"optimized_metric={name} needs a validation split, but dataset.val_size=0; "
            "set dataset.val_size, e.g. 5000"
        )
    # The task types' metric directions are their classes' (imported here, in a search only).
    directions = {"val/loss": "min"} | {
        f"val/{task}/{metric}": direction
        for task, node in cfg.tasks.items()
        for metric, direction in TASKS.get(node.type).directions.items()
    }
    if name not in directions:
        raise ConfigError(
            f"optimized_metric={name!r} is not a validation metric of this config; "
            f"choose one of: {listed(list(directions))}"
        )
    wanted = {"min": "minimize", "max": "maximize"}[directions[name]]
    if sweeper_direction is not None and sweeper_direction != wanted:
        better = "lower" if wanted == "minimize" else "higher"
        raise ConfigError(
            f"optimized_metric={name} is better when {better}, but hydra.sweeper.direction="
            f"{sweeper_direction}; set hydra.sweeper.direction={wanted}"
        )


def sweeper_direction(hydra_cfg: DictConfig) -> str | None:
    """Optuna's `direction` (an enum in the job's config): "minimize" or "maximize"; None for
    other sweepers and for multi-objective searches."""
    direction = OmegaConf.select(hydra_cfg, "sweeper.direction")
    direction = getattr(direction, "name", direction)
    return direction if isinstance(direction, str) else None


def is_basic_sweep(hydra_cfg: DictConfig) -> bool:
    """Whether Hydra's basic sweeper runs the sweep: its jobs are known before the first
    starts, and `Preflight` validates them all."""
    return str(OmegaConf.select(hydra_cfg, "sweeper._target_")).endswith("BasicSweeper")


class Preflight(Callback):
    """Validates the config Hydra composed before Hydra makes any folder: a run's, or every
    job's of a basic sweep (a search's, such as Optuna's, draws its values as it goes: each job
    checks its own). A mistake is one line and exit status 2, with no folder made."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        def check() -> None:
            drop_deleted_task_settings(config, list(config.hydra.overrides.task))
            validate(config)
            check_fresh_folder(config, "hydra.run.dir", sweep=False)

        refuse_unless(check, config)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        def check() -> None:
            if is_basic_sweep(config.hydra):
                for job in sweep_jobs(config):
                    drop_deleted_task_settings(job, list(job.hydra.overrides.task))
                    validate(job, sweeper_direction(config.hydra))
            else:
                # What the search does not draw is checked now, as a run's is: above all what
                # it optimises, which would otherwise fail every trial.
                drop_deleted_task_settings(config, list(config.hydra.overrides.task))
                check_run_keys(config)
                task_configs(config.tasks)
                check_optimized_metric(config, sweeper_direction(config.hydra))
            check_fresh_folder(config, "hydra.sweep.dir", sweep=True)

        refuse_unless(check, config)


def refuse_unless(check: Callable[[], None], config: DictConfig) -> None:
    """Run `check`; a mistake it finds ends the command in one line and exit status 2 (Hydra
    only warns about a callback's exceptions, so this exits itself)."""
    from hydra.errors import HydraException

    try:
        check()
    except UserError as error:
        fail(str(error))
    except (HydraException, OmegaConfBaseException) as error:
        fail(compose_error_line(error, list(config.hydra.overrides.task)))


def sweep_jobs(config: DictConfig) -> list[DictConfig]:
    """The config of every job of a basic sweep, composed as Hydra's sweeper will compose them
    (its own `hydra.sweeper.params` and the command line's sweeps, globs expanded)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ValueType

    loader = GlobalHydra.instance().config_loader()
    params = OmegaConf.select(config, "hydra.sweeper.params") or {}
    arguments = [f"{key}={value}" for key, value in params.items()]
    arguments += list(config.hydra.overrides.task)
    parser = OverridesParser.create(config_loader=loader)
    parsed = parser.parse_overrides(arguments)
    for override in parsed:
        if override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            check_glob_matches(override, loader)
    (batch,) = BasicSweeper.split_arguments(parsed, None)
    return [loader.load_sweep_config(config, list(overrides)) for overrides in batch]


def check_glob_matches(override: Any, loader: Any) -> None:
    """A `glob(...)` over a config group's options that matches none would sweep nothing (and
    the sweep would end at once with no job and no word): refused, with the options."""
    from hydra.core.object_type import ObjectType

    if next(override.sweep_string_iterator(), None) is not None:
        return
    group = override.key_or_group
    options = loader.get_group_options(group, results_filter=ObjectType.CONFIG)
    raise ConfigError(
        f"{override.input_line} matches no option of {group}; its options: "
        f"{listed(options, GROUPS_HELP)}"
    )


def check_fresh_folder(config: DictConfig, key: str, sweep: bool) -> None:
    """A new run never writes into an existing run's folder, as it would with a fixed
    `hydra.run.dir` (or `hydra.sweep.dir`) given twice: refused before Hydra writes `.hydra/`
    into it."""
    try:
        folder = Path(str(OmegaConf.select(config, key)))
    except Exception:  # a resolver that only Hydra's job setup provides
        return
    message = existing_run_message(folder, sweep=sweep)
    if message:
        raise UserError(message)


def compose_error_line(error: Exception, overrides: list[str]) -> str:
    """Hydra's or OmegaConf's error of composing a config as mtlrun's one line: an unknown
    option with the valid choices, a misspelt key with the closest real one, a value a schema
    refuses with its key, or Hydra's own first words."""
    from hydra.errors import MissingConfigException, OverrideParseException

    if isinstance(error, OverrideParseException):
        return unparsable_override(error, overrides)
    if isinstance(error, MissingConfigException) and error.missing_cfg_file:
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        options = error.options or group_options(group, overrides)
        key = group.rpartition("/")[2] or "--config-name"  # the primary config
        try:
            check_choice(key, option, sorted(o for o in options if not o.startswith("_")))
        except ConfigError as choice:
            return str(choice)
    missing = re.match(r"Could not override '([^']+)'", str(error))
    if missing:
        return unknown_key(missing.group(1), overrides)
    refused = refused_value(error)
    if refused:
        return refused
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    details = ("full_key", "object_type", "See https://hydra.cc")
    kept = []
    for line in lines:
        if line.startswith("Config search path"):
            break
        if not line.startswith(details):
            kept.append(line.rstrip("."))
    return "; ".join(kept)


# Characters Hydra's override grammar takes in a value without quotes (its lexer's ID, numbers
# and UNQUOTED_CHAR, with ':' and spaces between words); any other needs the value quoted.
UNQUOTED = re.compile(r"[A-Za-z0-9_\-/\\+.$%*@?|: ]")
KEY_CHARACTER = re.compile(r"[A-Za-z0-9_\-.@/]")
GRAMMAR = ",[]{}()="  # the grammar's own: sweeps, lists, dicts, functions


def unparsable_override(error: Exception, overrides: list[str]) -> str:
    """The line for an override Hydra's grammar cannot parse, with the fix: a value holding
    characters the grammar takes only in quotes (`name=héllo`, `dataset.root=/data/my#1`) is
    quoted; a word the shell split from the value before it (`name=my run`) is quoted with it;
    a key is plain ASCII."""
    override = str(getattr(error, "override", ""))
    lines = str(getattr(error, "message", error)).splitlines()
    skipped = ("Error parsing", "Lexer", "See https://hydra.cc")
    reason = next((line for line in lines if not line.startswith(skipped)), "a syntax error")
    if "=" not in override:
        index = overrides.index(override) if override in overrides else -1
        before = overrides[index - 1] if index > 0 and "=" in overrides[index - 1] else None
        if before is None:
            return f"{override!r} is not an override; write key=value, e.g. trainer.epochs=3"
        words = list(itertools.takewhile(lambda arg: "=" not in arg, overrides[index:]))
        key, _, value = before.partition("=")
        example = shell_quoted(f"{key}={quoted(' '.join([value, *words]))}")
        return (
            f"{override!r} is not an override: if it belongs to the value of {before}, quote "
            f"the value with its spaces, {example}"
        )
    key, _, value = override.partition("=")
    odd = sorted({char for char in key.lstrip("+~") if not KEY_CHARACTER.fullmatch(char)})
    if odd:
        return (
            f"{override}: the key holds {' '.join(odd)}; a key is ASCII letters, digits, _ and "
            "-, its parts joined by dots (a group's by / and @)"
        )
    odd = sorted({char for char in value if not UNQUOTED.fullmatch(char)} - set(GRAMMAR))
    if odd and "Lexer" in str(error):
        what = "non-ASCII characters" if any(not char.isascii() for char in odd) else "characters"
        # Only the texts that hold them: `é,b` (a sweep over two names) becomes `'é',b`.
        texts = re.sub(
            f"[^{re.escape(GRAMMAR)}]+",
            lambda text: quoted(text[0]) if set(text[0]) & set(odd) else text[0],
            value,
        )
        return (
            f"{override}: the value holds {what} ({' '.join(odd)}) that Hydra's override "
            f"grammar takes only in quotes; quote it, {shell_quoted(f'{key}={texts}')}"
        )
    example = shell_quoted(f"{key}={quoted(value)}")
    return f"cannot parse {override} ({reason}); if {value!r} is text, quote it, {example}"


def quoted(text: str) -> str:
    """A text as a quoted value of Hydra's grammar."""
    return f'"{text}"' if "'" in text else f"'{text}'"


def shell_quoted(override: str) -> str:
    """An override as typed in a shell: inside double quotes, or single ones where the shell
    would read something in double quotes."""
    if any(char in override for char in '"$`\\!'):
        return shlex.quote(override)
    return f'"{override}"'


def group_options(group: str, overrides: list[str]) -> list[str]:
    """The options of a config group on the search path the overrides give (mtlrun's, the
    plug-ins' and the user's folders)."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.object_type import ObjectType

    searchpath = [arg for arg in overrides if arg.startswith("hydra.searchpath=")]
    searchpath = searchpath or config_dir_flag(overrides)
    with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
        loader = GlobalHydra.instance().config_loader()
        with warnings.catch_warnings():  # a missing search path folder: Hydra warns later
            warnings.simplefilter("ignore")
            return loader.get_group_options(
                group, ObjectType.CONFIG, config_name="train", overrides=searchpath
            )


def job_keys(overrides: list[str]) -> list[str]:
    """Every dotted key of the job's config (`mtlrun train --cfg job`) that `overrides`
    compose; none where they do not compose."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    try:
        if GlobalHydra.instance().is_initialized():  # inside Hydra's main (`Preflight`)
            loader = GlobalHydra.instance().config_loader()
            cfg = loader.load_configuration("train", overrides, RunMode.RUN)
            cfg = OmegaConf.masked_copy(cfg, [name for name in cfg if name != "hydra"])
        else:
            with initialize_config_dir(version_base="1.3", config_dir=str(config_dir())):
                cfg = hydra_compose("train", overrides=overrides)
        return config_keys(OmegaConf.to_container(cfg))
    except Exception:  # another bad override: no keys to go by, its own error comes later
        return []


def unknown_key(key: str, overrides: list[str]) -> str:
    """The message for an override of a key the config does not have: the closest real key
    (`trainer.epoch` → `trainer.epochs`), from the config composed without that override.
    Hydra's own advice, `+key=value`, only adds a key that the part's schema then refuses."""
    rest = [arg for arg in first_job(overrides) if arg.split("=", 1)[0].lstrip("+~") != key]
    return not_a_key(key, job_keys(rest))


def not_a_key(key: str, keys: list[str]) -> str:
    """`key` is not among the config's `keys`: the message, with the closest of them."""
    # Keys as deep as the misspelt one: `backbone.zzz` is not a misspelt `backbone`.
    keys = [known for known in keys if known.count(".") == key.count(".")]
    match = difflib.get_close_matches(key, keys, n=1, cutoff=0.8)
    if match:
        return f"{key} is not a key of the config; did you mean {match[0]}?"
    return f"{key} is not a key of the config; see its keys with `mtlrun train --cfg job`"


def first_job(overrides: list[str]) -> list[str]:
    """The overrides of a sweep's first job (`latent_dim=2,8,32` → `latent_dim=2`, an
    `interval(a, b)` → its start), flags left out; the search path kept."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep, ValueType
    from hydra.errors import HydraException

    kept = split_flags(overrides)[1]
    try:
        parsed = OverridesParser.create().parse_overrides(kept)
    except HydraException:
        return kept
    job = []
    for override in parsed:
        if not override.is_sweep_override():
            job.append(override.input_line)
        elif override.value_type == ValueType.GLOB_CHOICE_SWEEP:
            continue
        elif isinstance(override.value(), IntervalSweep):
            job.append(f"{override.get_key_element()}={override.value().start}")
        else:
            first = next(iter(override.sweep_string_iterator()))
            job.append(f"{override.get_key_element()}={first}")
    return job


def config_keys(node: Any, prefix: str = "") -> list[str]:
    """Every dotted key of a config container: `trainer`, `trainer.epochs`, ..."""
    if not isinstance(node, dict):
        return []
    keys = []
    for name, value in node.items():
        key = f"{prefix}{name}"
        keys += [key, *config_keys(value, f"{key}.")]
    return keys


def listed_plugins(overrides: list[str]) -> list[str]:
    """The modules of a `plugins=[a,b]` (or `+plugins=...`) override."""
    for arg in overrides:
        key, _, value = arg.partition("=")
        if key.lstrip("+") == "plugins":
            return [name.strip() for name in value.strip("[]").split(",") if name.strip()]
    return []


# Hydra's flags that take the next argument as their value (`--cfg job`, `-cd DIR`), and the
# one whose value is optional (`--info` alone is `--info all`).
VALUED_FLAGS = {"--cfg", "-c", "--package", "-p", "--config-path", "-cp", "--config-name"}
VALUED_FLAGS |= {"-cn", "--config-dir", "-cd", "--experimental-rerun"}
INFO_FLAGS = ("--info", "-i")


def split_flags(arguments: list[str]) -> tuple[list[str], list[str]]:
    """A Hydra command line's flags (with their values, `--info` with its topic) and its
    overrides, each in the order given: Hydra's parser takes the overrides as one run of
    arguments only (`a=1 -m b=2` and `a=1 --cfg job b=2` are refused), `flags + overrides`
    in any order."""
    flags, overrides = [], []
    index = 0
    while index < len(arguments):
        arg = arguments[index]
        following = arguments[index + 1] if index + 1 < len(arguments) else None
        if not arg.startswith("-"):
            overrides.append(arg)
        elif arg in INFO_FLAGS:
            # `--info` then an override: the topic is all; a word alone, the parser checks it.
            is_topic = following is not None and not following.startswith(("-", "~", "+"))
            topic = following if is_topic and "=" not in str(following) else None
            flags += [arg, topic or "all"]
            index += topic is not None
        elif arg in VALUED_FLAGS and following is not None and not following.startswith("-"):
            flags += [arg, following]
            index += 1
        else:
            flags.append(arg)
        index += 1
    return flags, overrides


def config_dir_flag(overrides: list[str]) -> list[str]:
    """`hydra.searchpath=[...]` for the folder of a --config-dir (-cd) flag, so that the error
    path lists the options of the user's folder too."""
    for index, arg in enumerate(overrides):
        for flag in ("--config-dir", "-cd"):
            folder = None
            if arg == flag and index + 1 < len(overrides):
                folder = overrides[index + 1]
            elif arg.startswith(f"{flag}="):
                folder = arg.split("=", 1)[1]
            if folder is not None and os.path.isdir(folder):
                return [f"hydra.searchpath=[file://{os.path.abspath(folder)}]"]
    return []
