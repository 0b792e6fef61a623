"""Where the configs live (the YAML files, and the schemas the parts register), and turning
config nodes into typed, validated dataclasses."""

import dataclasses
import difflib
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from mtlrun.errors import ConfigError, listed

GROUPS_HELP = "see `mtlrun train --help`"  # lists every config group's options
KEYS = "see `mtlrun train --cfg job`"

T = TypeVar("T")


def config_dir() -> Path:
    """The configs folder: inside the installed package, else at the top of the source tree."""
    package = Path(__file__).resolve().parent
    for candidate in (package / "configs", package.parent / "configs"):
        if (candidate / "train.yaml").is_file():
            return candidate
    raise FileNotFoundError(f"mtlrun's configs folder is missing next to {package}")


def parse(schema: type[T], node: DictConfig | dict[str, Any] | None, key: str) -> T:
    """Validate `node` against the dataclass `schema`: wrong types and unknown keys become
    one-line ConfigErrors naming the full key (e.g. `backbone.latent_dim`), and so do values
    out of range when the schema has a `check(key)` method (it raises them)."""
    node = {} if node is None else node
    if OmegaConf.is_config(node):
        # A node composed from a registered schema is typed already, and a merge would keep a
        # key that `+key=value` added to it: the schema checks its plain contents instead.
        node = OmegaConf.to_container(node)
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        value = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        line = error_line(error, key)
        if isinstance(error, ConfigKeyError):  # a key added with +, misspelt
            fields = [field.name for field in dataclasses.fields(schema)]  # type: ignore[arg-type]
            match = difflib.get_close_matches(str(error.key), fields, n=1, cutoff=0.8)
            line += (
                f"; did you mean {key}.{match[0]}?"
                if match
                else f"; its keys: {listed(fields, KEYS)}"
            )
        raise ConfigError(line) from None
    assert dataclasses.is_dataclass(value)
    if hasattr(value, "check"):
        value.check(key)
    return value  # type: ignore[return-value]


def error_line(error: OmegaConfBaseException, key: str = "") -> str:
    """OmegaConf's error in one line: the full key (below `key`), then the first line of the
    reason: `backbone.latent_dim: Value 'abc' of type 'str' could not be converted to Integer`."""
    where = ".".join(part for part in (key, getattr(error, "full_key", None)) if part)
    reason = str(getattr(error, "msg", None) or error).splitlines()[0]
    return f"{where}: {reason}" if where else reason


def refused_value(error: Exception) -> str | None:
    """The one line for an error of composing a config (Hydra's, or OmegaConf's) whose cause is
    a value that a part's schema refuses (`backbone.latent_dim=abc`); None for other errors."""
    cause = error if isinstance(error, OmegaConfBaseException) else error.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None):
        return error_line(cause)
    return None


def check_range(
    key: str,
    value: float,
    low: float,
    high: float = math.inf,
    *,
    low_open: bool = False,
    high_open: bool = True,
) -> None:
    """Refuse a number outside [low, high) (or (low, ...) with `low_open`, [..., high] with
    `high_open=False`), or not finite, before PyTorch sees it: `optim.lr=0.0 must be above 0`."""
    above = low < value if low_open else low <= value
    below = value < high if high_open else value <= high
    if math.isfinite(value) and above and below:
        return
    if high == math.inf:
        allowed = f"above {low:g}" if low_open else f"at least {low:g}"
    else:
        allowed = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    finite = "" if math.isfinite(value) else "a finite number "
    raise ConfigError(f"{key}={value} must be {finite}{allowed}")


def check_each(key: str, values: Sequence[float], low: float) -> None:
    """Every entry of a list of widths or sizes at least `low`: `backbone.hidden_dims[1]=0`."""
    for index, value in enumerate(values):
        check_range(f"{key}[{index}]", value, low)


def check_integer(key: str, value: Any) -> int:
    """An integer, not a float that `int()` would truncate nor a word: `seed=1.5`, `seed=abc`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key}={value!r} must be an integer, e.g. {key}=0")
    return value


def check_choice(key: str, value: str, choices: list[str] | tuple[str, ...]) -> None:
    """The one message for a name that is not among the choices (a registry's, or a config
    group's: too many for one line, it points to the help that lists them all)."""
    if value not in choices:
        listing = listed(choices, GROUPS_HELP)
        raise ConfigError(f"{key}={value!r} is not known; choose one of: {listing}")


def as_override(groups: list[list[str]]) -> str:
    """`[[a,b],[c]]`, as the command line writes it."""
    return "[" + ",".join("[" + ",".join(group) + "]" for group in groups) + "]"
