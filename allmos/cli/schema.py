"""Hydra's view of the configuration, derived from EngineConfig so every switch is declared once.

`register_schemas()` stores the top-level schema, the model and workload schemas and every
plugin's options in Hydra's ConfigStore; the YAML files in conf/ name them in their defaults.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

from omegaconf import MISSING

from allmos.bench.slo import Slo
from allmos.bench.workloads import WorkloadSpec
from allmos.config import PLUGIN_SWITCHES, EngineConfig, PluginChoice
from allmos.errors import ConfigError
from allmos.registry import hydra_schemas, lookup

PLUGIN_GROUPS = PLUGIN_SWITCHES
FROM_MODEL_GROUP = ("model", "model_name", "architecture", "random_weights")


@dataclass
class ModelSchema:
    name: str = MISSING
    path: Optional[str] = None
    random_weights: str = "if_missing"
    architecture: Optional[Dict[str, Any]] = None
    prepare: Optional[str] = None  # make the folder on first need (e.g. smollm2: convert a shipped GGUF)


@dataclass
class ExperimentSchema:
    """What an experiment declares about itself, so the report needs no guessing: its kind picks the
    figures (cumulative | leave_one_out | sweep | serving), its baseline names one of its points."""

    name: Optional[str] = None
    kind: Optional[str] = None
    baseline: Optional[str] = None
    compared_with: Optional[str] = None  # set by a point's own file: another point it is also compared with


HARNESS_FIELDS = [
    ("mode", str, "bench"),  # bench | doctor | generate
    ("trial", int, 0),
    ("isolate", bool, True),  # run each job in a fresh process
    ("resume", bool, False),  # skip jobs whose folder already has a good record
    ("probe", bool, True),  # check a fixed greedy probe set against the stored reference
    ("prompt", Optional[str], None),  # mode=generate
    ("prompt_file", Optional[str], None),  # mode=generate: the prompt read from a file (`-`: stdin)
    ("max_tokens", int, 128),  # mode=generate
    ("point", Optional[str], None),  # this job's point name within its experiment (e.g. no_attention)
    ("experiment", ExperimentSchema, field(default_factory=ExperimentSchema)),
    ("slo", Slo, field(default_factory=Slo)),  # service-level objectives for goodput (null: not judged)
    ("model", Any, MISSING),
    ("workload", Any, MISSING),
]


def omegaconf_type(hint: Any) -> Any:
    """OmegaConf wants Optional[X] rather than `X | None`, and Any for plugin choices."""
    if hint is PluginChoice:
        return Any
    if isinstance(hint, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return Optional[args[0]] if len(args) == 1 else Any
    if typing.get_origin(hint) is dict or hint is dict:
        return Optional[Dict[str, Any]]
    return hint


def engine_fields() -> list[tuple[str, Any, Any]]:
    hints = typing.get_type_hints(EngineConfig)
    out = []
    for f in dataclasses.fields(EngineConfig):
        if f.name in FROM_MODEL_GROUP:
            continue
        default = MISSING if f.name in PLUGIN_GROUPS else f.default
        out.append((f.name, omegaconf_type(hints[f.name]), default))
    return out


def as_field(default: Any) -> Any:
    return default if isinstance(default, dataclasses.Field) else field(default=default)


def run_schema() -> type:
    specs = [(name, hint, as_field(default)) for name, hint, default in engine_fields() + HARNESS_FIELDS]
    return dataclasses.make_dataclass("RunConfig", specs)


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name="run_schema", node=run_schema())
    store.store(group="schema/model", name="model", node=ModelSchema)
    store.store(group="schema/workload", name="workload", node=WorkloadSpec)
    hydra_schemas()


UNSUPPORTED = {
    "trust_remote_code": "unsupported: allmos never runs code from a model folder "
    "(transformers' trust_remote_code is always false)",
}


def check_known_keys(cfg) -> None:
    """Refuse keys no schema declares (`+key=...` adds them past Hydra's checks), naming the key:
    top-level keys, a plugin's options unknown to the chosen plugin, model and workload keys."""
    known = {f.name for f in dataclasses.fields(run_schema())}
    sections = {"model": ModelSchema, "workload": WorkloadSpec, "experiment": ExperimentSchema, "slo": Slo}
    for key in cfg:
        if key not in known:
            raise ConfigError(key, UNSUPPORTED.get(key, f"unknown key; known keys: {', '.join(sorted(known))}"))
    for kind in PLUGIN_GROUPS:
        options = lookup(kind, cfg[kind].name).options
        check_section(cfg[kind], {f.name for f in dataclasses.fields(options)}, kind, f"{kind}={cfg[kind].name}")
    for section, schema in sections.items():
        if cfg.get(section) is not None:
            check_section(
                cfg[section], {f.name for f in dataclasses.fields(schema)} | {"weights_from"}, section, section
            )


def check_section(node, known: set[str], prefix: str, owner: str) -> None:
    for key in node:
        if key not in known:
            options = ", ".join(sorted(known - {"name"})) or "none"
            reason = UNSUPPORTED.get(key, f"{owner} has no option {key!r}; its options: {options}")
            raise ConfigError(f"{prefix}.{key}", reason)
