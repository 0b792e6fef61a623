"""One registry protocol for every swappable part (dataset, backbone, sharing, task, weighting,
optimiser, logger), mtlrun's own and plug-ins' alike: a name maps to a builder and the dataclass
schema of its config. The registered names are the valid choices that the CLI checks and its
messages list; the schema holds the defaults and the checks, and is stored in Hydra's
ConfigStore, so `backbone=NAME` composes for a part that has no YAML file of its own.

mtlrun's own parts are declared by name, schema and module (`mtlrun.parts`): composing and
checking a config imports only the schemas, and a part's module, with its torch code, is
imported when a run first builds that part. Plug-ins register their builders directly."""

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Generic, TypeVar

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

import mtlrun.plugins as plugins
from mtlrun.config import check_choice, parse
from mtlrun.errors import ConfigError, PluginError

T = TypeVar("T")


@dataclass
class Entry(Generic[T]):
    schema: type
    builder: T | None = None  # None until `module` is imported (a declared part)
    module: str | None = None  # where the builder is (a declared part's: where it registers)
    own: bool = False  # one of mtlrun's own parts (declared), not a plug-in's


class Registry(Generic[T]):
    """Names to builders. `build` validates a config node against the entry's schema (wrong
    types, unknown keys and out-of-range values are one-line ConfigErrors), hands the typed
    config to the builder, with whatever else the part needs, and checks that it returns the
    kind of object the part is (`builds`): a plug-in's mistake is one line naming it."""

    def __init__(
        self,
        config_key: str,
        group: str,
        *,
        builds: str,
        arguments: str,
        keyed: bool = False,
        name_key: str = "name",
    ) -> None:
        self.config_key = config_key  # how the choice is spelled in a config: `backbone`
        self.group = group  # the Hydra config group of the choices
        self.builds = builds  # the class of what a builder returns: `mtlrun.backbones.Backbone`
        self.arguments = arguments  # what a builder is called with: `config, info`
        self.keyed = keyed  # the group's options nest under their name (`logger.csv`)
        self.name_key = name_key  # the schema's field that holds the choice, if it has one
        self._entries: dict[str, Entry[T]] = {}

    def declare(self, name: str, schema: type, module: str) -> None:
        """Name one of mtlrun's own parts: its schema now, its builder when `module` (which
        registers it) is first imported by `get`."""
        self._store(name, schema)
        self._entries[name] = Entry(schema, module=module, own=True)

    def register(self, name: str, *, schema: type | None = None) -> Callable[[T], T]:
        """A decorator that registers a builder under `name` with its config `schema` (a
        dataclass); a declared part's module registers its builder without one. A name that is
        taken, or a schema that is no dataclass, is a `PluginError`."""
        declared = self._entries.get(name)
        if declared is not None and declared.own and declared.builder is None:
            schema = schema or declared.schema
        elif declared is not None:
            raise PluginError(self.taken(name, declared))
        if schema is None:
            raise PluginError(
                f"register.{self.group}({name!r}) needs schema=, a dataclass of its options"
            )
        if not (isinstance(schema, type) and is_dataclass(schema)):
            raise PluginError(
                f"{self.group} {name!r}: its schema {getattr(schema, '__name__', schema)!r} is "
                "not a dataclass; decorate it with @dataclasses.dataclass"
            )

        def add(builder: T) -> T:
            module = getattr(builder, "__module__", None)
            if declared is None:
                self._store(name, schema)
            elif module != declared.module:  # another module taking one of mtlrun's names
                raise PluginError(self.taken(name, declared))
            own = declared is not None
            self._entries[name] = Entry(schema, builder, module, own)
            return builder

        return add

    def taken(self, name: str, entry: Entry[T]) -> str:
        """Why `name` cannot be registered again."""
        if entry.own:
            return (
                f"{self.group} {name!r} is one of mtlrun's own; register yours under another name"
            )
        return f"{self.group} {name!r} is registered twice (first by {entry.module}); rename one"

    def _store(self, name: str, schema: type) -> None:
        """The schema's defaults as the group's option `name` in Hydra's ConfigStore."""
        defaults = OmegaConf.structured(schema)
        if self.name_key in (field.name for field in fields(schema)):  # `in` skips MISSING
            defaults[self.name_key] = name
        node = {name: defaults} if self.keyed else defaults
        ConfigStore.instance().store(group=self.group, name=name, node=node)

    def _entry(self, name: str) -> Entry[T]:
        check_choice(self.config_key, name, self.names)
        return self._entries[name]

    def get(self, name: str) -> T:
        entry = self._entry(name)
        if entry.builder is None:
            importlib.import_module(str(entry.module))  # its decorator fills the entry in
        builder = self._entries[name].builder
        assert builder is not None, f"{entry.module} does not register {self.config_key} {name}"
        return builder

    def plugin_builder(self, name: str) -> Any | None:
        """The builder a plug-in registered under `name`; None for mtlrun's own parts and names
        not registered."""
        entry = self._entries.get(name)
        return None if entry is None or entry.own else entry.builder

    def origin(self, name: str, key: str) -> str:
        """The choice of `name` at `key` as messages name it, with the plug-in it comes from:
        `plug-in my_lab.mtl: weighting=half`, `tasks.blob.type=hinge` (mtlrun's own)."""
        if self.keyed:
            choice = f"{self.group}={name}"
        elif key == self.config_key:
            choice = f"{key}={name}"
        else:
            choice = f"{key}.{self.name_key}={name}"
        entry = self._entry(name)
        if entry.own or entry.module is None:
            return choice
        return f"plug-in {plugins.owner(entry.module) or entry.module}: {choice}"

    def make(self, name: str, config: Any, key: str, *args: Any) -> Any:
        """The part `name`, built from its validated `config` and `args`; a plug-in's builder
        is first checked to take them, and what any builder returns to be a `builds`."""
        builder = self.get(name)
        if not self._entries[name].own:
            try:
                inspect.signature(builder).bind(config, *args)  # type: ignore[arg-type]
            except TypeError as error:
                raise PluginError(
                    f"{self.origin(name, key)}: {builder_name(builder)} is called as "
                    f"({self.arguments}), which its signature does not take ({error})"
                ) from None
        built = builder(config, *args)  # type: ignore[operator]
        module, _, cls = self.builds.rpartition(".")
        if not isinstance(built, getattr(importlib.import_module(module), cls)):
            what = (
                f"{builder_name(builder)} is no subclass of it"
                if isinstance(builder, type)
                else f"{builder_name(builder)} returned {type(built).__name__}"
            )
            raise PluginError(
                f"{self.origin(name, key)}: a {self.group} is a {self.builds}; {what}"
            )
        return built

    def schema(self, name: str) -> type:
        return self._entry(name).schema

    def config(self, name: str, node: DictConfig | dict | None, key: str) -> Any:
        """`node` validated against the schema of `name` (`key` is where it is in messages)."""
        schema = self._entry(name).schema
        try:
            return parse(schema, node, key)
        except ConfigError:
            foreign = sorted(set(node or {}) - {f.name for f in fields(schema)})
            if not self.is_option_keys(set(foreign)):
                raise
            choice = (
                f"{self.group}={name}" if key == self.config_key else f"+{self.group}@{key}={name}"
            )
            raise ConfigError(
                f"{key}.{self.name_key}={name} keeps keys of another option "
                f"({', '.join(foreign)}); choose the option itself, {choice}, which replaces "
                "the whole node"
            ) from None

    def is_option_keys(self, keys: set[str]) -> bool:
        """Whether `keys` are all keys of one registered option (of a node composed from it)."""
        schemas = (entry.schema for entry in self._entries.values())
        return bool(keys) and any(keys <= {f.name for f in fields(s)} for s in schemas)

    def build(self, name: str, node: DictConfig | dict | None, key: str, *args: Any) -> Any:
        """The part `name`, built from its config validated and `args` (see `make`)."""
        return self.make(name, self.config(name, node, key), key, *args)

    @property
    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: str) -> bool:
        return name in self._entries


def builder_name(builder: Any) -> str:
    return getattr(builder, "__qualname__", type(builder).__name__)
