"""Errors that are the user's to fix: reported as one line, never as a traceback."""

import sys
from collections.abc import Sequence
from typing import NoReturn

LISTED_CHARACTERS = 200  # of a list of choices: with the words around it, a line of about 300


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


class LostRank(UserError):
    """A rank of a data-parallel run found another gone (killed, or its machine): a fault, not
    the user's mistake, that every surviving rank meets; the run resumes from last.pt."""


def fail(message: str, code: int = 2) -> NoReturn:
    """End the command with its one line, `mtlrun: error: MESSAGE`, on stderr."""
    print(f"mtlrun: error: {message}", file=sys.stderr)
    sys.exit(code)


def listed(names: Sequence[str], where: str | None = None) -> str:
    """`names` joined by commas for a one-line message, cut after about 200 characters, the
    rest counted and `where` to see them all: `a, b, ... (12 more; see mtlrun train --help)`."""
    shown: list[str] = []
    for name in names:
        if len(", ".join([*shown, name])) > LISTED_CHARACTERS:
            break
        shown.append(name)
    if len(shown) == len(names):
        return ", ".join(names) or "none"
    rest = len(names) - len(shown)
    return f"{', '.join(shown)}, ... ({rest} more{f'; {where}' if where else ''})"
