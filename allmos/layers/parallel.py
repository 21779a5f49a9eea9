"""Which tensor-parallel rank this process is, passed explicitly to every sharded layer."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class ParallelInfo:
    rank: int = 0
    size: int = 1

    def shard(self, total: int, what: str) -> int:
        if total % self.size:
            raise ValueError(f"tensor_parallel_size={self.size} does not divide {what} ({total})")
        return total // self.size

    def all_reduce(self, x: torch.Tensor) -> torch.Tensor:
        if self.size > 1:
            dist.all_reduce(x)
        return x

    def all_gather_last_dim(self, x: torch.Tensor) -> torch.Tensor:
        if self.size == 1:
            return x
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts, dim=-1)
