"""The plugin that applies q/k RMSNorm (where the model has it) and rotary embedding to a layer's
queries and keys: as separate torch ops, or fused into one kernel."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch

from allmos.kv_store.base import KVPages, KVTarget
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.registry import Plugin


class QKVRope(NamedTuple):
    """A one-token decode step's q/k norm, RoPE and K/V store, as a qkv projection applies them in its
    epilogue (rope.fuse_qkv) to its packed output [q heads | k heads | v heads]."""

    positions: torch.Tensor  # [1]: the token's position
    q_norm: RMSNorm | None  # the model's q/k RMSNorms, both None where it has none
    k_norm: RMSNorm | None
    rotary: RotaryEmbedding  # its cos/sin caches
    num_heads: int  # query heads of this rank
    num_kv_heads: int
    kv: KVPages | None  # where the rotated K and V go; None: the KV store writes them


class QKRope(Plugin, ABC):
    """Normalises (where the model has q/k norms) and rotates a layer's queries and keys."""

    writes_kv = False  # whether `apply` can also write K/V into the paged cache (given `kv`)

    def fuses_into_qkv(self) -> bool:
        """Whether a linear plugin that can (`LinearPlugin.takes_rope`) should apply this plugin's work in the
        qkv projection's epilogue at one-token decode steps (QKVRope) instead of `apply`."""
        return False

    @abstractmethod
    def apply(
        self,
        positions: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        q_norm: RMSNorm | None,
        k_norm: RMSNorm | None,
        rotary: RotaryEmbedding,
        kv: KVTarget | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q [tokens, heads, dim], k [tokens, kv_heads, dim] -> the normed, rotated (q, k); with `kv`
        (only where `writes_kv`), the rotated k and kv.v are also written into the cache."""
