"""A plug-in's code that raises while mtlrun builds or trains a run, as one line: the plug-in,
the part the config chose from it, and where its code raised (the traceback goes to the run's
error.txt where the run has started). Imports no torch."""

import traceback
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from omegaconf import DictConfig

import mtlrun.plugins as plugins
from mtlrun.errors import PluginError, UserError
from mtlrun.parts import CHOSEN, LOGGERS, TASKS
from mtlrun.registry import Registry


def plugin_fault(cfg: DictConfig, error: BaseException) -> PluginError | None:
    """`error` as the one line that blames the plug-in whose code raised it; None for a user
    error (already one line), an interruption, or an error no plug-in's code took part in."""
    if isinstance(error, UserError) or not isinstance(error, Exception):
        return None
    found = plugins.blame(error)
    if found is None:
        return None
    plugin, at = found
    frame = traceback.extract_tb(at, limit=1)[0]
    part = blamed_part(cfg, plugin, error)
    line = plugins.error_line(error, frame)
    return PluginError(f"plug-in {plugin}: {f'{part} ' if part else ''}raised {line}")


def chosen_parts(cfg: DictConfig) -> Iterator[tuple[str, Registry, str]]:
    """Every part `cfg` chooses by name: (the choice as written, its registry, the name)."""
    for key, registry in CHOSEN.items():
        node = cfg.get(key)
        if isinstance(node, DictConfig) and node.get("name") is not None:
            yield f"{key}={node.name}", registry, str(node.name)
    for name, node in (cfg.get("tasks") or {}).items():
        if isinstance(node, DictConfig) and node.get("type") is not None:
            yield f"tasks.{name}.type={node.type}", TASKS, str(node.type)
    for name in cfg.get("logger") or {}:
        yield f"logger={name}", LOGGERS, str(name)


def blamed_part(cfg: DictConfig, plugin: str, error: BaseException) -> str | None:
    """The choice of `cfg` whose builder (a function, or a class and its methods) of `plugin`
    is the innermost on `error`'s traceback; all of the plug-in's choices when none is."""
    candidates = [
        (choice, builder)
        for choice, registry, name in chosen_parts(cfg)
        if (builder := registry.plugin_builder(name)) is not None
        and (plugins.owner(builder.__module__) or builder.__module__) == plugin
    ]
    for at in reversed(list(walk(error.__traceback__))):
        for choice, builder in candidates:
            if runs_in(at, builder):
                return choice
    return ", ".join(choice for choice, _ in candidates) or None


def walk(tb: TracebackType | None) -> Iterator[TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def runs_in(at: TracebackType, builder: Any) -> bool:
    """Whether the frame `at` is `builder`'s code: the function or one of its nested functions,
    or a method of the class (its own or inherited, on an instance of it)."""
    frame = at.tb_frame
    if isinstance(builder, type) and isinstance(frame.f_locals.get("self"), builder):
        return True
    qualname = frame.f_code.co_qualname
    return frame.f_globals.get("__name__") == builder.__module__ and (
        qualname == builder.__qualname__ or qualname.startswith(f"{builder.__qualname__}.")
    )
