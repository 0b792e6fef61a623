"""mtlrun: a command-line runner for multi-task learning experiments.

The Python API (`mtlrun.train`, `mtlrun.load_run`, `mtlrun.register`) is imported on first
use, so that `mtlrun --help` and `mtlrun list` do not wait for PyTorch."""

from typing import Any

__version__ = "0.1.0"

API = ("train", "load_run", "register", "Run", "LoadedRun", "Registration")
__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name in API:
        from mtlrun import api

        return getattr(api, name)
    raise AttributeError(f"module 'mtlrun' has no attribute {name!r}")
