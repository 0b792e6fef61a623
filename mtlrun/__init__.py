"""mtlrun: a command-line runner for multi-task learning experiments.

The Python API (`mtlrun.train`, `mtlrun.load_run`, `mtlrun.register`, and `mtlrun.UserError`,
the one exception it raises for a mistake) is imported on first use, so that `mtlrun --help`
and `mtlrun list` do not wait for PyTorch."""

from typing import Any

from mtlrun.version import __version__

API = ("train", "load_run", "register", "Run", "LoadedRun", "Registration", "UserError")
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name in API:
        from mtlrun import api

        return getattr(api, name)
    raise AttributeError(f"module 'mtlrun' has no attribute {name!r}")
