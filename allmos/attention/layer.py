"""The attention step of one decoder layer, prologue included: q/k norm and rotary embedding (the rope
plugin), the store of the new K/V into the paged cache (the KV store plugin, or the rope kernel itself
where it stores K/V), then attention over the cache (the backend). Which of the two stores K/V is
decided once, when the layer is built; the model only hands over its norms and rotary embedding. A
backend that fuses the prologue into its decode (`AttentionBackend.fuses_rope`) gets decode steps raw. Where
the rope plugin fuses into the qkv projection (rope.fuse_qkv), the layer offers the projection the prologue
of decode steps (`qkv_rope`), and skips what the projection did."""

from __future__ import annotations

import torch
from torch import nn

from allmos.attention.backend import AttentionBackend, DecodeRopeInputs
from allmos.attention.metadata import AttentionMetadata
from allmos.kv_store.base import KVPages, KVScales, KVStore, KVTarget
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.rope.base import QKRope, QKVRope


class PagedAttention(nn.Module):
    def __init__(
        self, backend: AttentionBackend, kv_store: KVStore, qk_rope: QKRope, rope_stores_kv: bool, rope_in_qkv: bool
    ):
        super().__init__()
        self.backend = backend
        self.kv_store = kv_store
        self.qk_rope = qk_rope
        self.rope_stores_kv = rope_stores_kv
        self.rope_in_qkv = rope_in_qkv
        self.prologue = self.rope_storing_kv if rope_stores_kv else self.rope_then_store
        self.decode_fuses_rope = backend.fuses_rope()
        self.k_cache: torch.Tensor | None = None  # bound by the model runner once allocated
        self.v_cache: torch.Tensor | None = None
        self.scales: KVScales | None = None  # the scales beside FP8 pages (kv_cache_dtype=fp8)

    def bind_cache(self, k_cache: torch.Tensor, v_cache: torch.Tensor, scales: KVScales | None = None) -> None:
        self.k_cache, self.v_cache, self.scales = k_cache, v_cache, scales

    def forward(
        self,
        positions: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        norms: tuple[RMSNorm | None, RMSNorm | None],
        rotary: RotaryEmbedding,
        meta: AttentionMetadata,
        rope_done: bool = False,
    ) -> torch.Tensor:
        """q [tokens, heads, dim], k and v [tokens, kv_heads, dim], before norm and rotation; `norms`
        are the model's (q_norm, k_norm), (None, None) where it has none. With `rope_done`, the qkv
        projection has applied `qkv_rope` already. Returns [tokens, heads, dim]."""
        if self.k_cache is None:
            raise RuntimeError("the KV cache is not bound: the model runner allocates it before any step")
        if self.decode_fuses_rope and not meta.is_prefill:
            rope = DecodeRopeInputs(positions, *norms, rotary)
            return self.backend.forward_decode_fused(q, k, v, self.k_cache, self.v_cache, meta, rope)
        if not rope_done:
            q, k = self.prologue(positions, q, k, v, norms, rotary, meta)
        elif not self.rope_stores_kv:
            self.kv_store.write(k, v, self.k_cache, self.v_cache, meta.slot_mapping, self.scales)
        return self.backend.forward(q, k, v, self.k_cache, self.v_cache, meta, self.scales)

    def qkv_rope(
        self,
        positions: torch.Tensor,
        norms: tuple[RMSNorm | None, RMSNorm | None],
        rotary: RotaryEmbedding,
        meta: AttentionMetadata,
    ) -> QKVRope | None:
        """The prologue this step offers the qkv projection (rope.fuse_qkv, decode steps), or None."""
        if not self.rope_in_qkv or meta.is_prefill:
            return None
        if self.k_cache is None:
            raise RuntimeError("the KV cache is not bound: the model runner allocates it before any step")
        pages = KVPages(self.k_cache, self.v_cache, meta.slot_mapping, self.scales) if self.rope_stores_kv else None
        heads = self.backend.heads
        return QKVRope(positions, *norms, rotary, heads.num_heads, heads.num_kv_heads, pages)

    def rope_then_store(self, positions, q, k, v, norms, rotary, meta):
        q, k = self.qk_rope.apply(positions, q, k, *norms, rotary)
        self.kv_store.write(k, v, self.k_cache, self.v_cache, meta.slot_mapping, self.scales)
        return q, k

    def rope_storing_kv(self, positions, q, k, v, norms, rotary, meta):
        target = KVTarget(v, self.k_cache, self.v_cache, meta.slot_mapping, self.scales)
        return self.qk_rope.apply(positions, q, k, *norms, rotary, target)
