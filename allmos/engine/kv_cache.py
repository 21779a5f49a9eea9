"""Sizing and allocating the paged KV cache."""

from __future__ import annotations

import gc
from dataclasses import dataclass

import torch

from allmos.config import EngineConfig


@dataclass(frozen=True)
class CacheShape:
    num_layers: int
    num_kv_heads: int  # on this rank
    head_dim: int
    block_size: int
    dtype: torch.dtype

    @property
    def block_bytes(self) -> int:
        per_token = 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.dtype.itemsize
        return per_token * self.block_size


def allocate(shape: CacheShape, num_blocks: int, device) -> torch.Tensor:
    """[2, layers, num_blocks + 1, block_size, kv_heads, head_dim]; the extra block takes padding writes.

    Zeroed: backends that read a whole block mask the unused tail, and 0 * NaN from stale memory
    would still poison the sum.
    """
    return torch.zeros(
        2,
        shape.num_layers,
        num_blocks + 1,
        shape.block_size,
        shape.num_kv_heads,
        shape.head_dim,
        dtype=shape.dtype,
        device=device,
    )


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
