"""The engine's configuration: one flat set of switches, the same names as the Hydra config keys.

`EngineConfig.create(**options)` accepts what `LLM(model, **options)` receives; `validate` refuses
impossible combinations before any weights load, each error naming its switch.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

import torch

from allmos.errors import ConfigError
from allmos.registry import BuildContext, Limits

PLUGIN_SWITCHES = ("attention", "kv_store", "rope", "linear", "scheduler", "sampler")
DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class PluginChoice:
    name: str
    options: dict = field(default_factory=dict)

    @classmethod
    def of(cls, value: Any) -> PluginChoice:
        """A plugin given as a name or as a dict with a `name` key and its options."""
        if isinstance(value, PluginChoice):
            return value
        if isinstance(value, str):
            return cls(value)
        options = dict(value)
        return cls(options.pop("name"), options)


@dataclass(frozen=True)
class EngineConfig:
    model: str | None = None  # a local Hugging Face folder
    model_name: str = ""  # the short name used in results
    architecture: dict | None = None  # config.json contents used when `model` is absent
    random_weights: str = "if_missing"  # never | if_missing | always
    load_format: str = "safetensors"  # safetensors | pt (.bin through torch.load(weights_only=True))
    device: str = "auto"
    dtype: str = "auto"
    attention: PluginChoice = PluginChoice("sdpa")
    kv_store: PluginChoice = PluginChoice("torch")
    rope: PluginChoice = PluginChoice("torch")  # q/k norm + rotary embedding: torch ops or one Triton kernel
    linear: PluginChoice = PluginChoice("torch")  # projections: cuBLAS, or fused Triton GEMVs for 1-token steps
    scheduler: PluginChoice = PluginChoice("continuous")
    sampler: PluginChoice = PluginChoice("gumbel")
    cuda_graphs: bool = False
    prefix_caching: bool = False
    compile: bool = False
    chunked_prefill: bool = False
    async_scheduling: bool = False  # queue the next decode step before reading back this one's tokens
    tensor_parallel_size: int = 1
    block_size: int = 256
    gpu_memory_utilization: float = 0.9
    cpu_kv_cache_gib: float = 1.0
    num_kv_blocks: int | None = None  # fixes the cache size (tests); otherwise sized from memory
    max_model_len: int = 4096
    max_num_seqs: int = 256
    max_num_batched_tokens: int = 16384
    seed: int = 0

    @classmethod
    def create(cls, model: str | None = None, **options: Any) -> EngineConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise ConfigError(unknown[0], f"unknown option; known options: {', '.join(sorted(known))}")
        for key in PLUGIN_SWITCHES:
            if key in options:
                options[key] = PluginChoice.of(options[key])
        if model is not None:
            model = os.path.expanduser(str(model))
        return cls(model=model, **options)

    @property
    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return self.device

    @property
    def torch_dtype(self) -> torch.dtype:
        if self.dtype != "auto":
            return DTYPES[self.dtype]
        if self.resolved_device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32

    def build_context(self, device: torch.device) -> BuildContext:
        """What every plugin is built from, on `device` (the engine adds the rest as it comes to exist)."""
        limits = Limits(self.max_num_seqs, self.max_num_batched_tokens, self.max_model_len, self.chunked_prefill)
        return BuildContext(device, self.torch_dtype, self.seed, self.compile, self.block_size, limits)

    def plugin_choices(self) -> dict[str, PluginChoice]:
        """The plugin of every kind this config chooses: one per config group (PLUGIN_SWITCHES),
        and the block manager and graph runner that the switches prefix_caching and cuda_graphs pick."""
        choices = {kind: getattr(self, kind) for kind in PLUGIN_SWITCHES}
        choices["block_manager"] = PluginChoice("prefix_caching" if self.prefix_caching else "paged")
        choices["graph_runner"] = PluginChoice("cuda_graph" if self.cuda_graphs else "eager")
        return choices

    def switches(self) -> dict[str, Any]:
        """Every switch and its value, flat: what a result record and a table show. A plugin's
        options appear as `plugin.option` (e.g. `attention.longest_first`), so runs that differ only
        there stay apart in the tables."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PluginChoice):
                out[f.name] = value.name
                out.update({f"{f.name}.{key}": option for key, option in value.options.items()})
            elif f.name not in ("model", "architecture", "model_name"):
                out[f.name] = value
        return out
