"""Plug-ins: Python modules that register their own parts (`from mtlrun import register`).

mtlrun imports a plug-in module when
- an installed distribution declares it in the entry-point group `mtlrun.plugins` (unless
  `$MTLRUN_SKIP_PLUGINS` names it);
- `$MTLRUN_PLUGINS` names it (comma-separated), or `mtlrun eval|sample|resume|reproduce`
  is given `--plugins NAME[,NAME]`;
- the config of `mtlrun train` lists it: `plugins=[my_lab.mtl]` (or an experiment's
  `plugins:` key).
It does so before composing the config and again in every job (joblib and submitit workers are
fresh processes). A plug-in module (or package) with a `configs/` folder next to its
`__init__.py` adds that folder to Hydra's search path, so it can ship experiments.

A plug-in that fails to import (a missing dependency, an exception, a syntax error, a name it
registers twice) is one line naming it and the fault; an installed one is then left out with a
one-line warning, so that a run that does not use it goes on.

A run folder is data, never code: rebuilding a run (`resume`, `eval`, `sample`, `reproduce`)
imports only installed entry points and the modules the user names, never a module because the
run's config lists it.
"""

import importlib
import importlib.metadata
import importlib.util
import os
import sys
import traceback
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType, TracebackType

from mtlrun.errors import PluginError, UserError

ENTRY_POINT_GROUP = "mtlrun.plugins"
ENVIRONMENT = "MTLRUN_PLUGINS"
SKIP_ENVIRONMENT = "MTLRUN_SKIP_PLUGINS"

_loaded: dict[str, ModuleType] = {}
_broken: dict[str, PluginError] = {}  # a module that failed once is not imported again


def entry_points() -> dict[str, str]:
    """Each module installed distributions declare in the `mtlrun.plugins` entry points, with
    the distribution that declares it (what `pip uninstall` takes)."""
    declared = {}
    for point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        distribution = point.dist.name if point.dist is not None else point.name
        declared[point.value.split(":")[0].strip()] = distribution
    return declared


def installed() -> list[str]:
    """The installed plug-in modules mtlrun imports: those `$MTLRUN_SKIP_PLUGINS` leaves out
    are not."""
    return sorted(set(entry_points()) - set(names_in(SKIP_ENVIRONMENT)))


def named_by_user() -> list[str]:
    """The modules `$MTLRUN_PLUGINS` names (the CLI adds those of `--plugins` to it)."""
    return names_in(ENVIRONMENT)


def names_in(variable: str) -> list[str]:
    return [name.strip() for name in os.environ.get(variable, "").split(",") if name.strip()]


def check_module_name(name: str) -> None:
    if not all(part.isidentifier() for part in name.split(".")):
        raise UserError(f"plugins: {name!r} is not a Python module name, e.g. my_lab.mtl")


def load(modules: Iterable[str]) -> None:
    """Import each module once (they register their parts as they are imported); a module
    that fails to import raises a `PluginError` whose one line names it and the fault."""
    for name in modules:
        if name in _loaded:
            continue
        if name in _broken:
            raise _broken[name]
        check_module_name(name)
        try:
            _loaded[name] = importlib.import_module(name)
        except ModuleNotFoundError as error:
            _broken[name] = missing_module(name, error)
            raise _broken[name] from None
        except UserError as error:  # a name registered twice, a schema that is no dataclass
            _broken[name] = PluginError(f"plug-in {name}: {error}")
            raise _broken[name] from None
        except Exception as error:  # SyntaxError included
            _broken[name] = PluginError(
                f"plug-in {name} fails to import: {error_line(error, plugin_frame(name, error))}"
                f"; see its traceback with: python -c 'import {name}'"
            )
            raise _broken[name] from None


def missing_module(name: str, error: ModuleNotFoundError) -> PluginError:
    """A module that is not there: the plug-in itself (or its package), or a package it needs,
    which is then the one to blame."""
    missing = error.name or ""
    if name == missing or name.startswith(f"{missing}."):
        return PluginError(
            f"plug-in module {name!r} is not importable; install its package (pip install) "
            "or add its folder to PYTHONPATH"
        )
    if missing.split(".")[0] == name.split(".")[0]:  # a module of its own package
        return PluginError(f"plug-in {name} fails to import: {error}")
    package = missing.split(".")[0]
    return PluginError(
        f"plug-in {name} needs the package {package!r}, which is not installed: "
        f"pip install {package}"
    )


def load_installed(exclude: Iterable[str] = ()) -> None:
    """Import the installed plug-ins (but those in `exclude`, which the caller requires). One
    that fails to import is left out with a one-line warning saying how to leave it out for
    good: a run that uses none of its parts goes on."""
    declared = entry_points()
    for name in sorted(set(installed()) - set(exclude)):
        if name in _broken:
            continue  # warned already
        try:
            load([name])
        except PluginError as error:
            print(
                f"mtlrun: warning: {error}; its parts are left out: uninstall it "
                f"(pip uninstall {declared[name]}) or set {SKIP_ENVIRONMENT}={name}",
                file=sys.stderr,
            )


def load_for_config(listed: Iterable[str]) -> None:
    """What `mtlrun train` imports: the installed and named plug-ins, and those the config
    lists (the user's own config, which they compose)."""
    required = [*named_by_user(), *listed]
    load_installed(exclude=required)
    load(required)


def load_for_run(listed: Iterable[str], allow: Iterable[str] = ()) -> None:
    """What rebuilding a saved run imports: the plug-ins it used, each only when it is
    installed, named by the user (`allow`, `$MTLRUN_PLUGINS`) or already imported by this
    process; otherwise one line saying why not: it is not installed here, it is left out, or
    it needs the user's consent."""
    listed = list(listed)
    declared = entry_points()
    permitted = {*installed(), *named_by_user(), *allow, *_loaded}
    for name in listed:
        check_module_name(name)
        if name in permitted:
            continue
        if name in declared:
            raise UserError(
                f"this run used the plug-in {name}, which {SKIP_ENVIRONMENT} leaves out; "
                f"take it out of {SKIP_ENVIRONMENT} to rebuild the run"
            )
        if importlib.util.find_spec(name.split(".")[0]) is None:  # imports nothing
            raise UserError(
                f"this run used the plug-in module {name!r}, which is not installed here; "
                "install the package that provides it (an installed plug-in needs no "
                f"--plugins), or put its folder on PYTHONPATH and add --plugins {name}"
            )
        raise UserError(
            f"this run used the plug-in module {name!r}, which mtlrun imports only when "
            f"you allow it: add --plugins {name} (or {ENVIRONMENT}={name}) if you trust "
            "its code"
        )
    required = [*named_by_user(), *listed]
    load_installed(exclude=required)
    load(required)


def owner(module: str) -> str | None:
    """The loaded plug-in that `module` is or belongs to (a module of its package)."""
    for name in _loaded:
        if module == name or module.startswith(f"{name}."):
            return name
    return None


def source(name: str) -> Path | None:
    """Where a plug-in's code lives: its package's folder, or its module's file (found without
    importing it)."""
    module = _loaded.get(name)
    origin = getattr(module, "__file__", None)
    if origin is None:
        try:
            spec = importlib.util.find_spec(name.split(".")[0])
        except (ImportError, ValueError):
            return None
        origin = spec.origin if spec is not None else None
        if origin is None:
            return None
        return Path(origin).parent if spec.submodule_search_locations else Path(origin)
    return Path(origin).parent if Path(origin).name == "__init__.py" else Path(origin)


def in_source(filename: str, folder_or_file: Path) -> bool:
    path = Path(filename)
    return path == folder_or_file or folder_or_file in path.parents


def plugin_frame(name: str, error: BaseException) -> traceback.FrameSummary | None:
    """The innermost frame of `error`'s traceback in the plug-in's own files."""
    root = source(name)
    if root is None:
        return None
    frames = [f for f in traceback.extract_tb(error.__traceback__) if in_source(f.filename, root)]
    return frames[-1] if frames else None


def error_line(error: BaseException, frame: traceback.FrameSummary | None) -> str:
    """`Type: first line of the message (file:line, in function)`; a syntax error's own file
    and line."""
    message = str(error).splitlines()[0] if str(error) else ""
    if isinstance(error, SyntaxError):
        message = error.msg
        where = f"{shown(error.filename or '')}:{error.lineno}"
    else:
        where = f"{shown(frame.filename)}:{frame.lineno}, in {frame.name}" if frame else None
    text = f"{type(error).__name__}: {message}" if message else type(error).__name__
    return f"{text} ({where})" if where else text


def shown(filename: str) -> str:
    """A file as messages show it: relative to the working folder when it is under it."""
    try:
        return str(Path(filename).relative_to(Path.cwd()))
    except ValueError:
        return filename


def blame(error: BaseException) -> tuple[str, TracebackType] | None:
    """The loaded plug-in at fault for `error` and the frame that shows it: the innermost frame
    of its traceback in a plug-in's files, or else in a method of one of a plug-in's classes
    (mtlrun's base class running on a plug-in's object); None when no plug-in took part."""
    roots = {name: root for name in _loaded if (root := source(name)) is not None}
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb)
        tb = tb.tb_next
    for tb in reversed(frames):
        filename = tb.tb_frame.f_code.co_filename
        for name, root in roots.items():
            if in_source(filename, root):
                return name, tb
    for tb in reversed(frames):
        this = tb.tb_frame.f_locals.get("self")
        name = owner(type(this).__module__) if this is not None else None
        if name is not None:
            return name, tb
    return None


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
