"""The plugin contract, in one place, for every kind.

A kind (attention, kv_store, rope, linear, sampler, scheduler, block_manager, graph_runner, model) is
a package holding its base class, its plugins and (in `kernels/`) their kernels. A plugin is a
subclass of its kind's base, in a module of its kind's package, registered with its options::

    @register("attention", "triton", options=TritonOptions)
    class TritonBackend(TritonPlugin, AttentionBackend): ...

Every plugin is built the same way, `cls(options, ctx)`, from one `BuildContext`; every plugin is
checked the same way, `cls.check(options, where)`, before any weights load. The modules of each
kind's package (not its subpackages: kernels import Triton) are imported on the first lookup, so a
new plugin is one new module plus, for a kind chosen by a config group, one YAML in conf/<kind>/.
Models are the one exception to `cls(options, ctx)`: the loader builds them from the Hugging Face
config and a ModelContext, and registers them under their `architectures` name.

The table below is the one deliberate piece of module state in allmos: it is filled while the
plugin modules are imported and only read afterwards.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import torch

from allmos.stats import EngineStats

if TYPE_CHECKING:
    from allmos.attention.backend import AttentionBackend, HeadShape
    from allmos.block_manager.base import BlockManager
    from allmos.sampling.base import Sampler


@dataclass(frozen=True)
class Kind:
    package: str  # holds the base, the plugins (discovered) and their kernels (kernels/)
    base: str  # "module:Class" every plugin of the kind derives from
    chosen_by: str  # "group": the config group named like the kind; else the switch that picks it


KINDS = {
    "scheduler": Kind("allmos.scheduler", "allmos.scheduler.base:Scheduler", "group"),
    "block_manager": Kind("allmos.block_manager", "allmos.block_manager.base:BlockManager", "prefix_caching"),
    "attention": Kind("allmos.attention", "allmos.attention.backend:AttentionBackend", "group"),
    "kv_store": Kind("allmos.kv_store", "allmos.kv_store.base:KVStore", "group"),
    "rope": Kind("allmos.rope", "allmos.rope.base:QKRope", "group"),
    "linear": Kind("allmos.linear", "allmos.linear.base:LinearPlugin", "group"),
    "sampler": Kind("allmos.sampling", "allmos.sampling.base:Sampler", "group"),
    "graph_runner": Kind("allmos.graph_runner", "allmos.graph_runner.base:GraphRunner", "cuda_graphs"),
    "model": Kind("allmos.models", "allmos.models.base:CausalLM", "architecture"),
}


@dataclass
class PluginOptions:
    """Base of every plugin's options; `name` is the registered name of the plugin."""

    name: str = ""


@dataclass(frozen=True)
class Limits:
    """The engine's size limits (what a scheduler plans under, what a graph runner captures for)."""

    max_num_seqs: int = 256
    max_num_batched_tokens: int = 16384
    max_model_len: int = 4096
    chunked_prefill: bool = False


@dataclass(frozen=True)
class BuildContext:
    """What every plugin is built from. The first fields hold from the start; the engine fills the
    later ones as what they name comes to exist (`dataclasses.replace`), before building the kinds
    that need them."""

    device: torch.device = torch.device("cpu")
    dtype: torch.dtype = torch.float32
    seed: int = 0
    compile: bool = False
    block_size: int = 256
    limits: Limits = Limits()
    stats: EngineStats = dataclasses.field(default_factory=EngineStats)  # what components report into
    heads: HeadShape | None = None  # attention: this rank's head shape
    num_blocks: int = 0  # block_manager: KV blocks in the cache
    block_manager: BlockManager | None = None  # scheduler
    eos_token_ids: frozenset[int] = frozenset()  # scheduler
    model: torch.nn.Module | None = None  # graph_runner: what it runs
    attention: AttentionBackend | None = None  # graph_runner: the backend that builds the step's metadata
    sampler: Sampler | None = None  # graph_runner: captured with the forward when the graph covers the step


@dataclass(frozen=True)
class CheckContext:
    """What `check` may look at: where the engine runs and the settings plugins depend on."""

    device: str  # the resolved device: cuda or cpu
    block_size: int
    attention: type  # the chosen attention backend's class
    kv_cache_dtype: str = "auto"  # what the KV cache stores: auto (the model's dtype) or fp8


class Plugin:
    """Holds its options; class attributes and `check` say where and with what it can run, so a
    config that asks for more is refused before the model loads."""

    devices: tuple[str, ...] = ("cpu", "cuda")
    plugin_kind = ""  # set by `register`
    plugin_name = ""

    def __init__(self, options: Any, ctx: BuildContext):
        self.options = options

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return cls.devices

    @classmethod
    def check(cls, options: Any, where: CheckContext) -> None:
        """Raise ConfigError naming the switch if this plugin cannot run with `options` `where`."""


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    cls: type
    options: type


_ENTRIES: dict[tuple[str, str], Entry] = {}


def base_of(kind: str) -> type:
    module, name = KINDS[kind].base.split(":")
    return getattr(importlib.import_module(module), name)


def register(kind: str, name: str, options: type = PluginOptions) -> Callable[[type], type]:
    if kind not in KINDS:
        raise ValueError(f"unknown plugin kind {kind!r}; known kinds: {', '.join(KINDS)}")

    def decorate(cls: type) -> type:
        base = base_of(kind)
        if not issubclass(cls, base):
            raise TypeError(f"{kind} plugin {name!r}: {cls.__qualname__} must derive from {base.__qualname__}")
        if not issubclass(options, PluginOptions):
            raise TypeError(
                f"{kind} plugin {name!r}: its options {options.__qualname__} must derive from PluginOptions"
            )
        key = (kind, name)
        if key in _ENTRIES and _ENTRIES[key].cls is not cls:
            raise ValueError(f"{kind} plugin {name!r} is registered twice")
        _ENTRIES[key] = Entry(kind, name, cls, options)
        cls.plugin_name = name
        cls.plugin_kind = kind
        return cls

    return decorate


def load_builtin_plugins() -> None:
    """Import every module of every kind's package, whose decorators fill the table (idempotent:
    Python caches imports)."""
    for kind in KINDS.values():
        package = importlib.import_module(kind.package)
        for module in pkgutil.iter_modules(package.__path__):
            if not module.ispkg and not module.name.startswith("_"):
                importlib.import_module(f"{kind.package}.{module.name}")


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


def build(kind: str, choice: Any, ctx: BuildContext) -> Any:
    """The plugin `choice` (a PluginChoice: name and options) of `kind`, built from `ctx`."""
    entry = lookup(kind, choice.name)
    return entry.cls(make_options(kind, choice.name, choice.options), ctx)


def hydra_schemas() -> None:
    """Store the options dataclass of every plugin chosen by a config group in Hydra's ConfigStore as
    `schema/<kind>/<name>` (apart from the `<kind>` group, so a schema is never offered as a choice;
    conf/<kind>/<name>.yaml names it in its defaults)."""
    from hydra.core.config_store import ConfigStore

    load_builtin_plugins()
    store = ConfigStore.instance()
    for (kind, name), entry in _ENTRIES.items():
        if KINDS[kind].chosen_by == "group":
            store.store(group=f"schema/{kind}", name=name, node=entry.options(name=name))
