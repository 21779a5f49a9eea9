from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import NamedTuple, Optional

import torch

from allmos.errors import ConfigError
from allmos.registry import Plugin, PluginOptions


class KVScales(NamedTuple):
    """The scales beside one layer's FP8 pages (kv_cache_dtype=fp8): the value a cache element holds,
    times its (token, kv head)'s scale, is the K or V it stores. Indexed by the same block numbers as
    the pages, so they are shared (prefix caching), freed and rewritten (preemption) with them."""

    k: torch.Tensor  # [num_blocks, kv_heads, block_size] float32 (head-major: a head's tile is contiguous)
    v: torch.Tensor
    fixed: float | None = None  # kv_store.fp8_scale: one scale for every value; None: amax / 448 per (token, head)


class KVTarget(NamedTuple):
    """Where a kernel that fuses the store writes a layer's new K/V: the paged caches, each token's slot."""

    v: torch.Tensor
    k_cache: torch.Tensor
    v_cache: torch.Tensor
    slot_mapping: torch.Tensor
    scales: KVScales | None = None  # with kv_cache_dtype=fp8


class KVPages(NamedTuple):
    """Where a kernel that computes the new K/V itself (the qkv projection's rope epilogue) stores them."""

    k_cache: torch.Tensor
    v_cache: torch.Tensor
    slot_mapping: torch.Tensor
    scales: KVScales | None = None  # with kv_cache_dtype=fp8


@dataclass
class KVStoreOptions(PluginOptions):
    # kv_cache_dtype=fp8 only. None (default): each (token, kv head) is scaled by its own absmax / 448,
    # kept beside the pages; a number: every value is divided by that one static scale (saturating at
    # +-448), as an uncalibrated vLLM does with 1.0. README "FP8 KV cache" gives the measurements.
    fp8_scale: Optional[float] = None


class KVStore(Plugin, ABC):
    """Writes the new tokens' K and V into the paged cache at their slots (slot -1: skip); with
    kv_cache_dtype=fp8, quantized, with their scales (`scales`)."""

    fp8_kv_cache = False  # whether `write` quantizes into FP8 pages with their scales (kv_cache_dtype=fp8)

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)
        check_fp8_scale(options.fp8_scale, where.kv_cache_dtype)

    def fuses_into_rope(self) -> bool:
        """Whether a rope plugin that can store K/V (`QKRope.writes_kv`) should do it instead of `write`."""
        return False

    @abstractmethod
    def write(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
        scales: KVScales | None = None,
    ) -> None: ...


def check_fp8_scale(scale: float | None, kv_cache_dtype: str) -> None:
    if scale is None:
        return
    if kv_cache_dtype != "fp8":
        raise ConfigError("kv_store.fp8_scale", f"applies only with kv_cache_dtype=fp8, not {kv_cache_dtype}")
    if not scale > 0 or scale == float("inf"):
        raise ConfigError("kv_store.fp8_scale", f"must be a finite number > 0 (or null: per token), got {scale}")
