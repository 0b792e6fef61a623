"""Errors that are the user's to fix: reported as one line, never as a traceback."""

import sys
from typing import NoReturn


class UserError(Exception):
    """A mistake in the command, config or files: the message names the problem and the fix."""


class ConfigError(UserError):
    """A config value that is unknown, of the wrong type, or impossible in combination."""


class DamagedRunFile(UserError):
    """A file of a run folder that is not what mtlrun wrote there: binary, cut off, or another
    kind of value."""


class PluginError(UserError):
    """A plug-in that does not keep mtlrun's interface: it fails to import, registers a name
    already taken, or one of its parts raises or returns what its part must not."""


class DataError(UserError):
    """Data that is missing, unreadable or of the wrong shape."""


class TrackerError(UserError):
    """A tracker (MLflow, W&B) that cannot be reached or used: its store damaged, its server
    silent, its key missing."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with its one line, `mtlrun: error: MESSAGE`, on stderr."""
    print(f"mtlrun: error: {message}", file=sys.stderr)
    sys.exit(code)
