"""Where the configs live, and turning config nodes into typed, validated dataclasses."""

import dataclasses
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtlrun.errors import ConfigError

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
    one-line ConfigErrors naming the full key (e.g. `backbone.latent_dim`)."""
    node = {} if node is None else node
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        value = OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        where = f"{key}.{error.full_key}" if getattr(error, "full_key", None) else key
        reason = str(getattr(error, "msg", error)).splitlines()[0]
        raise ConfigError(f"{where}: {reason}") from None
    assert dataclasses.is_dataclass(value)
    return value  # type: ignore[return-value]


def check_choice(key: str, value: str, choices: list[str] | tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}={value!r} is not known; choose one of: {', '.join(choices)}")
