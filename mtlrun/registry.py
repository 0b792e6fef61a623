"""One registry per swappable part: a name in the config maps to a class or function."""

from collections.abc import Callable
from typing import Generic, TypeVar

from mtlrun.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    """Names to builders; the registered names are the valid choices in error messages."""

    def __init__(self, config_key: str) -> None:
        self.config_key = config_key
        self._entries: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(entry: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.config_key} {name!r} is registered twice")
            self._entries[name] = entry
            return entry

        return add

    def get(self, name: str) -> T:
        if name not in self._entries:
            raise ConfigError(
                f"{self.config_key}={name!r} is not known; choose one of: {', '.join(self.names)}"
            )
        return self._entries[name]

    @property
    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries
