"""The plugin that applies q/k RMSNorm (where the model has it) and rotary embedding to a layer's
queries and keys: as separate torch ops, or fused into one kernel."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.kv_store.base import KVTarget
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.registry import Plugin


class QKRope(Plugin, ABC):
    """Normalises (where the model has q/k norms) and rotates a layer's queries and keys."""

    writes_kv = False  # whether `apply` can also write K/V into the paged cache (given `kv`)

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
