"""Plug-ins: Python modules that register their own parts (`from mtlrun import register`).

mtlrun imports a plug-in module when
- an installed distribution declares it in the entry-point group `mtlrun.plugins`;
- `$MTLRUN_PLUGINS` names it (comma-separated), or `mtlrun eval|sample|resume|reproduce`
  is given `--plugins NAME[,NAME]`;
- the config of `mtlrun train` lists it: `plugins=[my_lab.mtl]` (or an experiment's
  `plugins:` key).
It does so before composing the config and again in every job (joblib and submitit workers are
fresh processes). A plug-in module (or package) with a `configs/` folder next to its
`__init__.py` adds that folder to Hydra's search path, so it can ship experiments.

A run folder is data, never code: rebuilding a run (`resume`, `eval`, `sample`, `reproduce`)
imports only installed entry points and the modules the user names, never a module because the
run's config lists it.
"""

import importlib
import importlib.metadata
import os
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

from mtlrun.errors import UserError

ENTRY_POINT_GROUP = "mtlrun.plugins"
ENVIRONMENT = "MTLRUN_PLUGINS"

_loaded: dict[str, ModuleType] = {}


def installed() -> list[str]:
    """The modules installed distributions declare in the `mtlrun.plugins` entry points."""
    points = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    return sorted({point.value.split(":")[0].strip() for point in points})


def named_by_user() -> list[str]:
    """The modules `$MTLRUN_PLUGINS` names (the CLI adds those of `--plugins` to it)."""
    text = os.environ.get(ENVIRONMENT, "")
    return [name.strip() for name in text.split(",") if name.strip()]


def load(modules: Iterable[str]) -> None:
    """Import each module once (they register their parts as they are imported)."""
    for name in modules:
        if name in _loaded:
            continue
        if not all(part.isidentifier() for part in name.split(".")):
            raise UserError(f"plugins: {name!r} is not a Python module name, e.g. my_lab.mtl")
        try:
            _loaded[name] = importlib.import_module(name)
        except ModuleNotFoundError as error:
            if error.name is None or not name.startswith(error.name):
                raise  # the plug-in itself imports something missing: its own error
            raise UserError(
                f"plug-in module {name!r} is not importable; install its package (pip install) "
                "or add its folder to PYTHONPATH"
            ) from None


def load_for_config(listed: Iterable[str]) -> None:
    """What `mtlrun train` imports: the installed and named plug-ins, and those the config
    lists (the user's own config, which they compose)."""
    load([*installed(), *named_by_user(), *listed])


def load_for_run(listed: Iterable[str], allow: Iterable[str] = ()) -> None:
    """What rebuilding a saved run imports: the plug-ins it used, each only when it is
    installed, named by the user (`allow`, `$MTLRUN_PLUGINS`) or already imported by this
    process; otherwise one line saying how to allow it."""
    permitted = {*installed(), *named_by_user(), *allow, *_loaded}
    for name in listed:
        if name not in permitted:
            raise UserError(
                f"this run used the plug-in module {name!r}, which mtlrun imports only when "
                f"you allow it: add --plugins {name} (or {ENVIRONMENT}={name}) if you trust "
                "its code"
            )
    load([*installed(), *named_by_user(), *listed])


def config_dirs() -> list[Path]:
    """The `configs/` folders of the loaded plug-ins, for Hydra's search path."""
    folders = []
    for module in _loaded.values():
        origin = getattr(module, "__file__", None)
        if origin and (Path(origin).parent / "configs").is_dir():
            folders.append(Path(origin).parent / "configs")
    return folders


def versions() -> dict[str, str]:
    """Each loaded plug-in module and the version of the distribution that provides it (or its
    `__version__`; "unknown" for a plain module), for meta.json."""
    providers = importlib.metadata.packages_distributions()
    recorded = {}
    for name, module in sorted(_loaded.items()):
        version = getattr(module, "__version__", None)
        for distribution in providers.get(name.split(".")[0], []):
            try:
                version = importlib.metadata.version(distribution)
                break
            except importlib.metadata.PackageNotFoundError:
                continue
        recorded[name] = str(version) if version is not None else "unknown"
    return recorded


def loaded() -> list[str]:
    return sorted(_loaded)


def split_option(args: list[str]) -> tuple[list[str], str | None]:
    """`--plugins a,b` (or `--plugins=a,b`) taken out of a command's arguments."""
    rest, option = [], None
    iterator = iter(args)
    for arg in iterator:
        if arg == "--plugins":
            option = next(iterator, None)
            if option is None:
                raise UserError("--plugins needs module names, e.g. --plugins my_lab.mtl")
        elif arg.startswith("--plugins="):
            option = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return rest, option
