"""A tiny name -> factory registry, so that adding an architecture, dataset, training
mode or estimator is one decorated function (plus its test), not edits across the tree."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Sequence
from typing import Generic, TypeVar

T = TypeVar("T", bound=Callable)


class Registry(Generic[T]):
    """Maps names to factories; unknown names raise a KeyError that lists what exists.

    `plugins` names modules that register more entries and import the module that owns the
    registry: they are imported on the first lookup, so the owner never imports them (no
    import cycle) and every lookup still sees their entries.
    """

    def __init__(self, kind: str, plugins: Sequence[str] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}
        self._meta: dict[str, dict] = {}
        self._plugins = tuple(plugins)

    def _load_plugins(self) -> None:
        plugins, self._plugins = self._plugins, ()
        for module in plugins:
            importlib.import_module(module)

    def register(self, name: str, **meta) -> Callable[[T], T]:
        """Decorator; `meta` holds facts known without calling the factory (e.g. shapes)."""

        def add(factory: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = factory
            self._meta[name] = dict(meta)
            return factory

        return add

    def meta(self, name: str) -> dict:
        self.get(name)  # loads the plugins
        return self._meta[name]

    def get(self, name: str) -> T:
        self._load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} {name!r}; allowed: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        self._load_plugins()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
