"""The attention step of one decoder layer: store the new K/V, then attend over the cache."""

from __future__ import annotations

import torch
from torch import nn

from allmos.attention.backend import AttentionBackend
from allmos.attention.metadata import AttentionMetadata
from allmos.kv_store.base import KVStore, KVTarget


class PagedAttention(nn.Module):
    def __init__(self, backend: AttentionBackend, kv_store: KVStore):
        super().__init__()
        self.backend = backend
        self.kv_store = kv_store
        self.k_cache: torch.Tensor | None = None  # bound by the model runner once allocated
        self.v_cache: torch.Tensor | None = None

    def bind_cache(self, k_cache: torch.Tensor, v_cache: torch.Tensor) -> None:
        self.k_cache, self.v_cache = k_cache, v_cache

    def forward(self, q, k, v, meta: AttentionMetadata) -> torch.Tensor:
        self.check_bound()
        self.kv_store.write(k, v, self.k_cache, self.v_cache, meta.slot_mapping)
        return self.attend(q, k, v, meta)

    def attend(self, q, k, v, meta: AttentionMetadata) -> torch.Tensor:
        """Attention alone, the new K/V already in the cache (written by a fused kernel: `kv_target`)."""
        return self.backend.forward(q, k, v, self.k_cache, self.v_cache, meta)

    def kv_target(self, v: torch.Tensor, meta: AttentionMetadata) -> KVTarget:
        self.check_bound()
        return KVTarget(v, self.k_cache, self.v_cache, meta.slot_mapping)

    def check_bound(self) -> None:
        if self.k_cache is None:
            raise RuntimeError("the KV cache is not bound: the model runner allocates it before any step")
