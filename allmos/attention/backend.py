"""The attention backend interface: one implementation per file, registered by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import torch

from allmos.attention.metadata import AttentionMetadata
from allmos.registry import BuildContext, Plugin


@dataclass(frozen=True)
class HeadShape:
    num_heads: int  # query heads on this rank
    num_kv_heads: int
    head_dim: int
    scale: float


class AttentionBackend(Plugin, ABC):
    """Computes attention of new queries against the paged KV cache (already holding the new KV)."""

    supports_cuda_graphs: bool = False
    # True where decode work grows with the block-table width rather than the context lengths
    # (a gather of the whole table): CUDA graphs are then captured per table-width bucket too.
    graphs_per_table_width: bool = False

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        self.heads: HeadShape = ctx.heads

    def build_metadata(self, meta: AttentionMetadata) -> AttentionMetadata:
        """Add backend-specific tensors to the step's metadata (once per step, not per layer)."""
        return meta

    @abstractmethod
    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        meta: AttentionMetadata,
    ) -> torch.Tensor:
        """q [tokens, heads, dim]; k, v [tokens, kv_heads, dim]; caches [blocks, block_size, kv_heads, dim].

        Returns [tokens, heads, dim].
        """
