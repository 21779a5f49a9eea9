"""Attention through PyTorch's scaled_dot_product_attention over K/V gathered from the cache.

Prefill loops over the sequences of the step (not over tokens). Decode gathers every sequence's
blocks into one padded tensor and masks past each context length, so its shapes depend only on
the batch and the block-table width, which lets a CUDA graph capture it (one graph per batch and
table-width bucket, so a graph's gather is at most twice the batch's longest context).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from allmos.attention.backend import AttentionBackend, GraphMode
from allmos.attention.metadata import AttentionMetadata
from allmos.kv_store import fp8
from allmos.kv_store.base import KVScales
from allmos.registry import register

NO_SCALES = KVScales(None, None)  # pages in the model's dtype


def gather_context(
    cache: torch.Tensor, block_table: torch.Tensor, length: int, scale_pages: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """The first `length` tokens of one sequence: [length, kv_heads, dim] in `dtype` (FP8 pages
    dequantized with their `scale_pages`)."""
    num_blocks = (length + cache.shape[1] - 1) // cache.shape[1]
    return gather_pages(cache, block_table[:num_blocks], scale_pages, dtype)[:length]


def gather_pages(
    cache: torch.Tensor, block_table: torch.Tensor, scale_pages: torch.Tensor | None, dtype: torch.dtype
) -> torch.Tensor:
    """The pages `block_table` [..., width] in token order: [..., width * block_size, kv_heads, dim]."""
    values = cache[block_table].flatten(-4, -3)
    if scale_pages is None:
        return values.to(dtype)
    return fp8.dequantize(values, fp8.gather_scales(scale_pages, block_table), dtype)


def end_aligned_causal_mask(q_len: int, k_len: int, device) -> torch.Tensor:
    """Query i (the (k_len - q_len + i)-th token) sees keys 0 .. k_len - q_len + i."""
    rows = torch.arange(q_len, device=device).unsqueeze(1) + (k_len - q_len)
    return torch.arange(k_len, device=device).unsqueeze(0) <= rows


@register("attention", "sdpa")
class SdpaBackend(AttentionBackend):
    """With FP8 pages (kv_cache_dtype=fp8) the gathered K/V are dequantized before attention; a prefill
    with no earlier context attends to its own new K/V as computed, not to their FP8 copies."""

    graph_mode = GraphMode.PER_BATCH_AND_TABLE_WIDTH
    fp8_kv_cache = True

    def forward(self, q, k, v, k_cache, v_cache, meta: AttentionMetadata, scales=None) -> torch.Tensor:
        if meta.is_prefill:
            return self.prefill(q, k, v, k_cache, v_cache, meta, scales or NO_SCALES)
        return self.decode(q, k_cache, v_cache, meta, scales or NO_SCALES)

    def attend(self, q, k, v, mask=None, causal=False) -> torch.Tensor:
        """q [heads, q_len, dim], k/v [kv_heads, k_len, dim] -> [q_len, heads, dim]."""
        gqa = q.shape[-3] != k.shape[-3]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=self.heads.scale, enable_gqa=gqa
        )
        return out.transpose(-3, -2)

    def prefill(self, q, k, v, k_cache, v_cache, meta, scales) -> torch.Tensor:
        out = torch.empty_like(q)
        start = 0
        for i, (q_len, k_len) in enumerate(zip(meta.query_lens_host, meta.context_lens_host)):
            end = start + q_len
            if k_len == q_len:
                keys, values, mask = k[start:end], v[start:end], None
            else:
                keys = gather_context(k_cache, meta.block_tables[i], k_len, scales.k, q.dtype)
                values = gather_context(v_cache, meta.block_tables[i], k_len, scales.v, q.dtype)
                mask = end_aligned_causal_mask(q_len, k_len, q.device)
            out[start:end] = self.attend(
                q[start:end].transpose(0, 1),
                keys.transpose(0, 1).to(q.dtype),
                values.transpose(0, 1).to(q.dtype),
                mask=mask,
                causal=mask is None,
            )
            start = end
        return out

    def decode(self, q, k_cache, v_cache, meta, scales) -> torch.Tensor:
        batch, width = meta.block_tables.shape
        keys = gather_pages(k_cache, meta.block_tables, scales.k, q.dtype)  # [batch, width * block_size, kv_heads, dim]
        values = gather_pages(v_cache, meta.block_tables, scales.v, q.dtype)
        positions = torch.arange(width * k_cache.shape[1], device=q.device)
        mask = (positions.unsqueeze(0) < meta.context_lens.unsqueeze(1))[:, None, None, :]
        out = self.attend(q.unsqueeze(2), keys.transpose(1, 2), values.transpose(1, 2), mask=mask)
        return out.squeeze(1)
