"""The attention backend interface: one implementation per file, registered by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

import torch

from allmos.attention.metadata import AttentionMetadata
from allmos.kv_store.base import KVScales
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.registry import BuildContext, Plugin


@dataclass(frozen=True)
class HeadShape:
    num_heads: int  # query heads on this rank
    num_kv_heads: int
    head_dim: int
    scale: float


class GraphMode(Enum):
    """Which decode steps of a backend a CUDA graph can capture, and per what."""

    NONE = "none"  # none: cuda_graphs=true is refused
    PER_BATCH = "per_batch"  # one graph per batch-size bucket
    # also per block-table width bucket: for decode work that follows the table width rather than the
    # context lengths (a gather of the whole table)
    PER_BATCH_AND_TABLE_WIDTH = "per_batch_and_table_width"


class DecodeRopeInputs(NamedTuple):
    """What a backend that fuses the q/k norm and RoPE into its decode (`fuses_rope`) applies itself."""

    positions: torch.Tensor  # [batch]: each new token's position
    q_norm: RMSNorm | None  # the model's q/k RMSNorms, both None where it has none
    k_norm: RMSNorm | None
    rotary: RotaryEmbedding  # its cos/sin caches


class AttentionBackend(Plugin, ABC):
    """Computes attention of new queries against the paged KV cache (already holding the new KV)."""

    graph_mode = GraphMode.NONE
    fp8_kv_cache = False  # whether `forward` reads FP8 pages with their scales (kv_cache_dtype=fp8)
    # Whether the prefill path also serves rows of one query token over a long cached context (what a
    # prefix-cache hit asks already), so that scheduler=mixed can run decode rows and prompt chunks in one
    # forward; a backend that cannot is refused for scheduler=mixed.
    serves_mixed_steps = True

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        self.heads: HeadShape = ctx.heads

    def build_metadata(self, common: AttentionMetadata) -> AttentionMetadata:
        """The backend's metadata for the step, from the common metadata: once per step (not per layer),
        for eager steps and inside CUDA-graph capture alike. A backend that adds fields returns
        `common.extend(ItsMetadata, ...)`."""
        return common

    @abstractmethod
    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        meta: AttentionMetadata,
        scales: KVScales | None = None,
    ) -> torch.Tensor:
        """q [tokens, heads, dim]; k, v [tokens, kv_heads, dim]; caches [blocks, block_size, kv_heads, dim],
        in the model's dtype or, with kv_cache_dtype=fp8 (only where `fp8_kv_cache`), float8 e4m3 with
        their `scales`.

        Returns [tokens, heads, dim].
        """

    def fuses_rope(self) -> bool:
        """Whether decode steps come to `forward_decode_fused` instead of `forward`: with q, k, v raw (before
        the q/k norm and RoPE) and the new K/V not yet in the cache, which the backend normalizes, rotates
        and stores itself (at meta.slot_mapping, -1 skipped). Prefill steps always come to `forward`."""
        return False

    def forward_decode_fused(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        meta: AttentionMetadata,
        rope: DecodeRopeInputs,
    ) -> torch.Tensor:
        """A decode step where `fuses_rope` (one token per sequence): q [batch, heads, dim], k, v [batch,
        kv_heads, dim] raw. Returns [batch, heads, dim]."""
        raise NotImplementedError(f"attention={self.plugin_name} does not fuse the rope into its decode")
