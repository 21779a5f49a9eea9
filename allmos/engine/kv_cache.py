"""Sizing and allocating the paged KV cache."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch

from allmos.config import EngineConfig
from allmos.kv_store import fp8
from allmos.kv_store.base import KVScales


@dataclass(frozen=True)
class CacheShape:
    num_layers: int
    num_kv_heads: int  # on this rank
    head_dim: int
    block_size: int
    dtype: torch.dtype  # of the values: the model's, or float8_e4m3fn (kv_cache_dtype=fp8)
    fixed_scale: float | None = None  # FP8 only: kv_store.fp8_scale

    @property
    def fp8(self) -> bool:
        return self.dtype == fp8.FP8

    @property
    def block_bytes(self) -> int:
        """What one block takes, K and V of every layer: the values, and FP8's float32 scales per (token, head)."""
        per_head = self.head_dim * self.dtype.itemsize + (SCALE_DTYPE.itemsize if self.fp8 else 0)
        return 2 * self.num_layers * self.num_kv_heads * per_head * self.block_size


SCALE_DTYPE = torch.float32


@dataclass(frozen=True)
class PagedCache:
    """The paged KV cache: values [2, layers, num_blocks + 1, block_size, kv_heads, head_dim] and, for
    FP8 values, their scales [2, layers, num_blocks + 1, kv_heads, block_size] (head-major in a page,
    so a kernel reads one head's scales of a tile contiguously). Block i of the scales belongs to block
    i of the values: shared, freed and rewritten with it."""

    values: torch.Tensor
    scales: torch.Tensor | None
    fixed_scale: float | None

    def layer(self, i: int) -> tuple[torch.Tensor, torch.Tensor, KVScales | None]:
        """Layer i's (k_cache, v_cache, scales)."""
        scales = None if self.scales is None else KVScales(self.scales[0, i], self.scales[1, i], self.fixed_scale)
        return self.values[0, i], self.values[1, i], scales

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (self.values, self.scales) if t is not None)


def allocate(shape: CacheShape, num_blocks: int, device) -> PagedCache:
    """The cache of `num_blocks` blocks plus one that takes padding writes.

    Zeroed: backends that read a whole block mask the unused tail, and 0 * NaN from stale memory
    would still poison the sum.
    """
    layers, heads, block_size = shape.num_layers, shape.num_kv_heads, shape.block_size
    values = torch.zeros(2, layers, num_blocks + 1, block_size, heads, shape.head_dim, dtype=shape.dtype, device=device)
    scales = None
    if shape.fp8:
        scales = torch.zeros(2, layers, num_blocks + 1, heads, block_size, dtype=SCALE_DTYPE, device=device)
    return PagedCache(values, scales, shape.fixed_scale)


def cpu_num_blocks(config: EngineConfig, shape: CacheShape) -> int:
    return int(config.cpu_kv_cache_gib * 2**30) // shape.block_bytes - 1


def cuda_num_blocks(config: EngineConfig, shape: CacheShape, device, activation_peak: int) -> int:
    """Blocks that fit in gpu_memory_utilization of the card after weights and activations.

    Memory that this process's allocator caches but no live tensor uses (an earlier engine's cache,
    freed) counts as free: it is collected and returned to the driver first.
    """
    gc.collect()
    torch.cuda.empty_cache()
    free, total = torch.cuda.mem_get_info(device)
    in_use_now = total - free
    torch_now = torch.cuda.memory_allocated(device)
    budget = total * config.gpu_memory_utilization - in_use_now - max(activation_peak - torch_now, 0)
    blocks = int(budget) // shape.block_bytes - 1
    if blocks < 1:
        gib = 2**30
        raise MemoryError(
            f"no room for the KV cache: the card has {total / gib:.1f} GiB, gpu_memory_utilization="
            f"{config.gpu_memory_utilization} allows {total * config.gpu_memory_utilization / gib:.1f} GiB; "
            f"weights and other tensors take {torch_now / gib:.2f} GiB, the activation peak "
            f"{max(activation_peak - torch_now, 0) / gib:.2f} GiB more, other processes "
            f"{(in_use_now - torch.cuda.memory_reserved(device)) / gib:.2f} GiB; one block needs "
            f"{shape.block_bytes / 2**20:.1f} MiB. Lower max_num_batched_tokens or raise gpu_memory_utilization."
        )
    return blocks
