"""One registry for every plugin kind.

A plugin registers its class and its options dataclass under (kind, name)::

    @register("attention", "triton", options=TritonOptions)
    class TritonBackend(AttentionBackend): ...

The Hydra config group named like the kind selects the plugin by name, and `hydra_schemas`
stores each options dataclass in Hydra's ConfigStore so Hydra validates the plugin's options.

The table below is the one deliberate piece of module state in allmos: it is filled while the
plugin modules are imported and only read afterwards.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

KINDS = (
    "scheduler",
    "block_manager",
    "attention",
    "kv_store",
    "rope",
    "linear",
    "sampler",
    "graph_runner",
    "model",
)


@dataclass
class PluginOptions:
    """Base of every plugin's options; `name` is the registered name of the plugin."""

    name: str = ""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    cls: type
    options: type


_ENTRIES: dict[tuple[str, str], Entry] = {}


def register(kind: str, name: str, options: type = PluginOptions) -> Callable[[type], type]:
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; known kinds: {', '.join(KINDS)}")

    def decorate(cls: type) -> type:
        key = (kind, name)
        if key in _ENTRIES and _ENTRIES[key].cls is not cls:
            raise ValueError(f"{kind} plugin {name!r} is registered twice")
        _ENTRIES[key] = Entry(kind, name, cls, options)
        cls.plugin_name = name
        cls.plugin_kind = kind
        return cls

    return decorate


def lookup(kind: str, name: str) -> Entry:
    load_builtin_plugins()
    entry = _ENTRIES.get((kind, name))
    if entry is None:
        known = ", ".join(names(kind)) or "none"
        raise ValueError(f"{kind}={name!r} is not a registered {kind} plugin; choose one of: {known}")
    return entry


def names(kind: str) -> list[str]:
    load_builtin_plugins()
    return sorted(name for k, name in _ENTRIES if k == kind)


def make_options(kind: str, name: str, values: dict[str, Any] | None = None) -> Any:
    """Build the plugin's options dataclass from a plain dict, refusing unknown keys."""
    entry = lookup(kind, name)
    values = {k: v for k, v in (values or {}).items() if k != "name"}
    fields = {f.name for f in dataclasses.fields(entry.options)}
    unknown = sorted(set(values) - fields)
    if unknown:
        raise ValueError(f"{kind}={name}: unknown option(s) {unknown}; known: {sorted(fields - {'name'})}")
    return entry.options(name=name, **values)


def hydra_schemas() -> None:
    """Store every plugin's options dataclass in Hydra's ConfigStore as `schema/<kind>/<name>` (apart
    from the `<kind>` group, so a schema is never offered as a choice)."""
    from hydra.core.config_store import ConfigStore

    load_builtin_plugins()
    store = ConfigStore.instance()
    for (kind, name), entry in _ENTRIES.items():
        if kind == "model":
            continue
        store.store(group=f"schema/{kind}", name=name, node=entry.options(name=name))


def load_builtin_plugins() -> None:
    """Import the modules whose decorators fill the table (idempotent: imports are cached)."""
    from allmos import plugins  # noqa: F401
