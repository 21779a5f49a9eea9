"""Refuse configurations that cannot run, before any weights load."""

from __future__ import annotations

import dataclasses
import os

import torch

from allmos.config import DTYPES, KV_CACHE_DTYPES, MAX_MODEL_LEN_CAP, EngineConfig
from allmos.errors import ConfigError
from allmos.registry import KINDS, CheckContext, lookup, make_options, names


def validate(config: EngineConfig) -> None:
    check_values(config)
    check_device(config)
    check_model_source(config)
    check_limits(config)
    check_plugins(config)


def check_plugins(config: EngineConfig) -> None:
    """Every chosen plugin: a registered name, options it knows, a device it runs on, its own `check`."""
    attention = lookup("attention", config.attention.name).cls  # unknown names fail with the known list
    where = CheckContext(config.resolved_device, config.block_size, attention, config.kv_cache_dtype)
    for kind, choice in config.plugin_choices().items():
        entry = lookup(kind, choice.name)
        options = plugin_options(kind, choice)
        if KINDS[kind].chosen_by == "group":  # a kind a switch picks says in `check` what to set instead
            check_plugin_device(kind, entry.cls, config)
        entry.cls.check(options, where)
        check_fp8_pages(kind, entry.cls, config.kv_cache_dtype)
    check_rope_placement(config)
    check_look_ahead(config)


def check_rope_placement(config: EngineConfig) -> None:
    """Decode steps' q/k norm and RoPE run in one place: the qkv projection (rope.fuse_qkv) or the decode
    attention kernel (attention.fuse_rope), not both."""
    choices = config.plugin_choices()
    rope = plugin_options("rope", choices["rope"])
    attention = plugin_options("attention", choices["attention"])
    if getattr(rope, "fuse_qkv", False) and getattr(attention, "fuse_rope", False):
        raise ConfigError(
            "rope.fuse_qkv",
            "(on by default with rope=triton) and attention.fuse_rope=true both normalize and rotate decode "
            "steps' q and k; set rope.fuse_qkv=false to do it in the decode kernel instead",
        )


def check_look_ahead(config: EngineConfig) -> None:
    scheduler = lookup("scheduler", config.scheduler.name).cls
    if config.async_scheduling and scheduler.look_ahead is None:
        raise ConfigError(
            "async_scheduling",
            f"scheduler={config.scheduler.name} has no look-ahead policy; set async_scheduling=false",
        )


def check_fp8_pages(kind: str, cls: type, kv_cache_dtype: str) -> None:
    """With kv_cache_dtype=fp8, the attention backend must read FP8 pages and the KV store write them."""
    if kv_cache_dtype != "fp8" or kind not in ("attention", "kv_store") or cls.fp8_kv_cache:
        return
    able = [n for n in names(kind) if lookup(kind, n).cls.fp8_kv_cache]
    verb = "read" if kind == "attention" else "write"
    raise ConfigError(
        kind,
        f"{cls.plugin_name} cannot {verb} the FP8 pages of kv_cache_dtype=fp8; use {kind}={' or '.join(able)}, "
        "or kv_cache_dtype=auto",
    )


def plugin_options(kind: str, choice) -> object:
    try:
        return make_options(kind, choice.name, choice.options)
    except (TypeError, ValueError) as error:
        raise ConfigError(kind, str(error)) from None


def check_values(c: EngineConfig) -> None:
    if c.device not in ("auto", "cuda", "cpu"):
        raise ConfigError("device", f"must be auto, cuda or cpu, got {c.device!r}")
    if c.dtype != "auto" and c.dtype not in DTYPES:
        raise ConfigError("dtype", f"must be auto or one of {', '.join(DTYPES)}, got {c.dtype!r}")
    if not (c.cuda_graphs is True or c.cuda_graphs is False or c.cuda_graphs == "forward"):
        raise ConfigError("cuda_graphs", f"must be true, false or forward, got {c.cuda_graphs!r}")
    if c.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise ConfigError("kv_cache_dtype", f"must be one of {', '.join(KV_CACHE_DTYPES)}, got {c.kv_cache_dtype!r}")
    if not 0.0 < c.gpu_memory_utilization <= 1.0:
        raise ConfigError("gpu_memory_utilization", f"must be in (0, 1], got {c.gpu_memory_utilization}")
    if c.block_size < 1 or c.block_size & (c.block_size - 1):
        raise ConfigError("block_size", f"must be a power of two, got {c.block_size}")
    for name in ("max_model_len", "max_num_seqs", "max_num_batched_tokens", "tensor_parallel_size"):
        if getattr(c, name) is not None and getattr(c, name) < 1:
            raise ConfigError(name, f"must be at least 1, got {getattr(c, name)}")
    if c.num_kv_blocks is not None and c.num_kv_blocks < 1:
        raise ConfigError("num_kv_blocks", f"must be at least 1 when set, got {c.num_kv_blocks}")
    if c.load_format not in ("safetensors", "pt"):
        raise ConfigError("load_format", f"must be safetensors or pt, got {c.load_format!r}")
    if c.random_weights not in ("never", "if_missing", "always"):
        raise ConfigError("random_weights", f"must be never, if_missing or always, got {c.random_weights!r}")


def check_device(c: EngineConfig) -> None:
    if c.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda was asked for but no CUDA device is visible; use device=cpu")
    if c.resolved_device == "cuda" and c.tensor_parallel_size > torch.cuda.device_count():
        raise ConfigError(
            "tensor_parallel_size",
            f"{c.tensor_parallel_size} ranks need as many GPUs, {torch.cuda.device_count()} visible",
        )
    check_fp8_device(c)
    if c.resolved_device == "cpu" and c.dtype in ("float16",):
        raise ConfigError("dtype", "float16 matmuls are not supported well on CPU; use float32 or bfloat16")


def check_fp8_device(c: EngineConfig) -> None:
    """FP8 conversion instructions exist from compute capability 8.9 (Ada, Hopper) on; the CPU path
    converts in torch."""
    if c.kv_cache_dtype != "fp8" or c.resolved_device != "cuda":
        return
    capability = torch.cuda.get_device_capability()
    if capability < (8, 9):
        raise ConfigError(
            "kv_cache_dtype",
            f"fp8 needs a CUDA GPU of compute capability 8.9+ (FP8 conversion); this one is "
            f"{capability[0]}.{capability[1]}: use kv_cache_dtype=auto",
        )


def check_model_source(c: EngineConfig) -> None:
    has_folder = c.model is not None and os.path.isfile(os.path.join(c.model, "config.json"))
    if c.random_weights == "always":
        if c.architecture is None and not has_folder:
            raise ConfigError("model", "random weights need an architecture or a folder with config.json")
        return
    if has_folder:
        return
    if c.model is None and c.architecture is None:
        raise ConfigError("model", "no model given: pass a Hugging Face folder")
    where = "does not exist" if c.model is None or not os.path.isdir(c.model) else "has no config.json"
    if c.random_weights == "if_missing" and c.architecture is not None:
        return
    raise ConfigError("model", f"the model folder {c.model!r} {where}")


def check_limits(c: EngineConfig) -> None:
    if c.max_model_len is None:  # known once the model's config is read: with_model_len checks it then
        return
    chunks = c.chunked_prefill or lookup("scheduler", c.scheduler.name).cls.always_chunks_prompts
    if not chunks and c.max_num_batched_tokens < c.max_model_len:
        raise ConfigError(
            "max_num_batched_tokens",
            f"{c.max_num_batched_tokens} < max_model_len={c.max_model_len}: a long prompt could never be "
            "scheduled; raise it or set chunked_prefill=true",
        )


def with_model_len(c: EngineConfig, hf_config) -> EngineConfig:
    """`c` with max_model_len resolved: None takes the model's max_position_embeddings capped at
    MAX_MODEL_LEN_CAP; an explicit value larger than the model's is refused."""
    positions = getattr(hf_config, "max_position_embeddings", None)
    if c.max_model_len is not None:
        if positions is not None and c.max_model_len > positions:
            raise ConfigError(
                "max_model_len", f"{c.max_model_len} exceeds the model's max_position_embeddings ({positions})"
            )
        return c
    resolved = dataclasses.replace(c, max_model_len=min(positions or MAX_MODEL_LEN_CAP, MAX_MODEL_LEN_CAP))
    check_limits(resolved)
    return resolved


def check_plugin_device(kind: str, cls: type, c: EngineConfig) -> None:
    device = c.resolved_device
    if not hasattr(cls, "runs_on") or device in cls.runs_on():
        return
    here = [n for n in names(kind) if device in lookup(kind, n).cls.runs_on()]
    raise ConfigError(
        kind,
        f"{cls.plugin_name} runs on {', '.join(cls.runs_on())} only, not on {device}; "
        f"on {device} use {kind}={' or '.join(here)}",
    )


def check_tensor_parallel(c: EngineConfig, hf_config) -> None:
    """Every dimension the ranks split must divide by tensor_parallel_size (needs the model's config,
    so the engine calls this once config.json is read, still before any weights load)."""
    n = c.tensor_parallel_size
    if n == 1:
        return
    heads = hf_config.num_attention_heads
    dims = {
        "num_attention_heads": heads,
        "num_key_value_heads": getattr(hf_config, "num_key_value_heads", None) or heads,
        "intermediate_size": getattr(hf_config, "intermediate_size", None),
    }
    dims = {name: value for name, value in dims.items() if value}
    for name, value in dims.items():
        if value % n:
            valid = [d for d in range(1, min(dims.values()) + 1) if all(v % d == 0 for v in dims.values())]
            raise ConfigError(
                "tensor_parallel_size",
                f"{n} does not divide the model's {name} ({value}); sizes that divide "
                f"{', '.join(f'{k}={v}' for k, v in dims.items())}: {', '.join(map(str, valid))}",
            )
