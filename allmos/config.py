"""The engine's configuration: one flat set of switches, the same names as the Hydra config keys.

`EngineConfig.create(**options)` accepts what `LLM(model, **options)` receives; `validate` refuses
impossible combinations before any weights load, each error naming its switch.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from allmos.errors import ConfigError
from allmos.registry import BuildContext, Limits

PLUGIN_SWITCHES = ("attention", "kv_store", "rope", "linear", "scheduler", "sampler")
MAX_MODEL_LEN_CAP = 4096  # max_model_len=None takes the model's max_position_embeddings, at most this
# Every optimization off: the baseline of every speedup (`+preset=all_off`, conf/preset/all_off.yaml).
ALL_OFF = {
    "attention": "sdpa",
    "kv_store": "torch",
    "rope": "torch",
    "linear": "torch",
    "sampler": "gumbel",
    "cuda_graphs": False,
    "compile": False,
    "prefix_caching": False,
    "async_scheduling": False,
    "kv_cache_dtype": "auto",
}
# What runs on a machine without CUDA (`+machine=cpu`, conf/machine/cpu.yaml, which adds workload=smoke):
# the Triton kernels and CUDA graphs need CUDA; compile runs on CPU but costs minutes of compiling.
CPU_DEFAULTS = ALL_OFF | {"prefix_caching": True, "async_scheduling": True}
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64}
# kv_cache_dtype: auto stores K/V in the model's dtype; fp8 in float8 e4m3, scaled (kv_store.fp8_scale).
KV_CACHE_DTYPES = {"auto": None, "fp8": torch.float8_e4m3fn}


@dataclass(frozen=True)
class PluginChoice:
    name: str
    options: dict = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any, default: str | None = None) -> PluginChoice:
        """A plugin given as a name or as a dict of its options with a `name` key; without one, the
        options are the `default` plugin's (`attention={"pdl": False}` keeps the default backend)."""
        if isinstance(value, PluginChoice):
            return value
        if isinstance(value, str):
            return cls(value)
        options = dict(value)
        name = options.pop("name", default)
        if name is None:
            raise ValueError(f"plugin options {options} name no plugin (add a 'name' key)")
        return cls(name, options)


@dataclass(frozen=True)
class EngineConfig:
    model: str | None = None  # a local Hugging Face folder
    model_name: str = ""  # the short name used in results
    architecture: dict | None = None  # config.json contents used when `model` is absent
    random_weights: str = "if_missing"  # never | if_missing | always
    load_format: str = "safetensors"  # safetensors | pt (.bin through torch.load(weights_only=True))
    device: str = "auto"
    dtype: str = "auto"
    # The defaults are everything on that runs on CUDA, as conf/config.yaml says (tests/unit/config/test_defaults.py
    # checks both agree); on a machine without CUDA `create` starts from CPU_DEFAULTS instead.
    attention: PluginChoice = PluginChoice("triton")
    kv_store: PluginChoice = PluginChoice("triton")
    rope: PluginChoice = PluginChoice("triton")  # q/k norm + rotary embedding: torch ops or one Triton kernel
    linear: PluginChoice = PluginChoice("triton")  # projections: cuBLAS, or fused Triton GEMVs for 1-token steps
    scheduler: PluginChoice = PluginChoice("continuous")
    sampler: PluginChoice = PluginChoice("triton")
    cuda_graphs: bool | str = True  # true: whole decode steps (forward, LM head, sampler); forward: the forward only
    fused_graph_inputs: bool = True  # with cuda_graphs: one Triton kernel loads a replay's inputs into the graph
    prefix_caching: bool = True
    compile: bool = True
    chunked_prefill: bool = False
    async_scheduling: bool = True  # queue the next decode step before reading back this one's tokens
    kv_cache_dtype: str = "auto"  # auto: the model's dtype; fp8: float8 e4m3 with scales (approximate)
    tensor_parallel_size: int = 1
    block_size: int = 256
    gpu_memory_utilization: float = 0.9
    cpu_kv_cache_gib: float = 1.0
    num_kv_blocks: int | None = None  # fixes the cache size (tests); otherwise sized from memory
    max_model_len: int | None = None  # None: the model's max_position_embeddings, capped at MAX_MODEL_LEN_CAP
    max_num_seqs: int = 512
    max_num_batched_tokens: int = 16384
    seed: int = 0

    @classmethod
    def create(cls, model: str | None = None, **options: Any) -> EngineConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown option; known options: {', '.join(sorted(known))}")
        on_cpu = resolve_device(str(options.get("device", "auto"))) == "cpu"
        options = machine_defaults(options) | options
        for key in PLUGIN_SWITCHES:
            if key in options:
                options[key] = PluginChoice.of(options[key], cls.default_plugin(key, CPU_DEFAULTS if on_cpu else {}))
        if model is not None:
            model = os.path.expanduser(str(model))
        return cls(model=model, **options)

    @classmethod
    def default_plugin(cls, key: str, machine: dict[str, Any]) -> str:
        """The plugin a config group takes when none is named: this machine's default."""
        if key in machine:
            return PluginChoice.of(machine[key]).name
        return next(f.default.name for f in dataclasses.fields(cls) if f.name == key)

    @property
    def resolved_device(self) -> str:
        return resolve_device(self.device)

    @property
    def torch_dtype(self) -> torch.dtype:
        if self.dtype != "auto":
            return DTYPES[self.dtype]
        if self.resolved_device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    @property
    def kv_cache_torch_dtype(self) -> torch.dtype:
        """The dtype of the paged KV cache's values."""
        return KV_CACHE_DTYPES.get(self.kv_cache_dtype) or self.torch_dtype

    def build_context(self, device: torch.device) -> BuildContext:
        """What every plugin is built from, on `device` (the engine adds the rest as it comes to exist)."""
        limits = Limits(self.max_num_seqs, self.max_num_batched_tokens, self.max_model_len, self.chunked_prefill)
        return BuildContext(device, self.torch_dtype, self.seed, self.compile, self.block_size, limits)

    def plugin_choices(self) -> dict[str, PluginChoice]:
        """The plugin of every kind this config chooses: one per config group (PLUGIN_SWITCHES),
        and the block manager and graph runner that the switches prefix_caching and cuda_graphs pick."""
        choices = {kind: getattr(self, kind) for kind in PLUGIN_SWITCHES}
        choices["block_manager"] = PluginChoice("prefix_caching" if self.prefix_caching else "paged")
        choices["graph_runner"] = graph_runner_choice(self.cuda_graphs, self.fused_graph_inputs)
        return choices

    def switches(self) -> dict[str, Any]:
        """Every switch and its value, flat: what a result record and a table show. A plugin's
        options appear as `plugin.option` (e.g. `attention.longest_first`), so runs that differ only
        there stay apart in the tables; every option of the plugin, defaults included, so a config built
        in Python shows what the same config composed by Hydra shows."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PluginChoice):
                out[f.name] = value.name
                out.update({f"{f.name}.{key}": option for key, option in resolved_options(f.name, value).items()})
            elif f.name not in ("model", "architecture", "model_name"):
                out[f.name] = value
        return out


CUDA_GRAPHS_VALUES = (True, False, "forward")


def graph_runner_choice(cuda_graphs: bool | str, fused_inputs: bool = True) -> PluginChoice:
    """cuda_graphs=true: graphs of whole decode steps; forward: of the model's forward only; false: none.
    fused_graph_inputs: whether one kernel loads a replay's inputs (without graphs there is nothing to load)."""
    if cuda_graphs is False:
        return PluginChoice("eager")
    scope = "forward" if cuda_graphs == "forward" else "step"
    return PluginChoice("cuda_graph", {"scope": scope, "fused_inputs": fused_inputs})


def resolved_options(kind: str, choice: PluginChoice) -> dict[str, Any]:
    """The plugin's options with their defaults filled in; as given where the plugin or an option is
    unknown (validation refuses those, and a failure record still shows what was asked for)."""
    from allmos.registry import make_options

    try:
        options = make_options(kind, choice.name, choice.options)
    except (ValueError, TypeError):
        return dict(choice.options)
    return {k: v for k, v in dataclasses.asdict(options).items() if k != "name"}


def approximate_switches(config: EngineConfig | Mapping[str, Any]) -> list[str]:
    """The switches of `config` (an EngineConfig, or its flat `switches()` as a record keeps them) that
    change the numbers the model computes, not only how fast: e.g. ["kv_cache_dtype=fp8"]. Empty when
    the configuration is exact, i.e. should reproduce the all-off reference token for token."""
    get = config.get if isinstance(config, Mapping) else lambda key, default=None: getattr(config, key, default)
    return ["kv_cache_dtype=fp8"] if get("kv_cache_dtype", "auto") == "fp8" else []


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def machine_defaults(options: dict[str, Any]) -> dict[str, Any]:
    """The rule for `LLM(path)` without CUDA: the switches the caller did not pass start from
    CPU_DEFAULTS instead of the CUDA defaults, said on stderr once per engine; what the caller passed
    is kept (and refused by `validate` if it cannot run here). The record's switches show what ran."""
    if resolve_device(str(options.get("device", "auto"))) != "cpu":
        return {}
    unset = {k: v for k, v in CPU_DEFAULTS.items() if k not in options}
    if unset:
        shown = " ".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in unset.items())
        print(f"allmos: on cpu the defaults become: {shown}", file=sys.stderr)
    return unset
