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


class DataError(UserError):
    """Data that is missing, unreadable or of the wrong shape."""


class TrainingDiverged(UserError):
    """The loss became NaN or infinite."""


class LostRank(UserError):
    """A rank of a data-parallel run found another gone (killed, or its machine): a fault, not
    the user's mistake, that every surviving rank meets; the run resumes from last.pt."""


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with its one line, `mtlrun: error: MESSAGE`, on stderr."""
    print(f"mtlrun: error: {message}", file=sys.stderr)
    sys.exit(code)
