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
from allmos.registry import register


def gather_context(cache: torch.Tensor, block_table: torch.Tensor, length: int) -> torch.Tensor:
    """The first `length` tokens of one sequence: [length, kv_heads, dim]."""
    num_blocks = (length + cache.shape[1] - 1) // cache.shape[1]
    return cache[block_table[:num_blocks]].flatten(0, 1)[:length]


def end_aligned_causal_mask(q_len: int, k_len: int, device) -> torch.Tensor:
    """Query i (the (k_len - q_len + i)-th token) sees keys 0 .. k_len - q_len + i."""
    rows = torch.arange(q_len, device=device).unsqueeze(1) + (k_len - q_len)
    return torch.arange(k_len, device=device).unsqueeze(0) <= rows


@register("attention", "sdpa")
class SdpaBackend(AttentionBackend):
    graph_mode = GraphMode.PER_BATCH_AND_TABLE_WIDTH

    def forward(self, q, k, v, k_cache, v_cache, meta: AttentionMetadata) -> torch.Tensor:
        if meta.is_prefill:
            return self.prefill(q, k, v, k_cache, v_cache, meta)
        return self.decode(q, k_cache, v_cache, meta)

    def attend(self, q, k, v, mask=None, causal=False) -> torch.Tensor:
        """q [heads, q_len, dim], k/v [kv_heads, k_len, dim] -> [q_len, heads, dim]."""
        gqa = q.shape[-3] != k.shape[-3]
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=causal, scale=self.heads.scale, enable_gqa=gqa
        )
        return out.transpose(-3, -2)

    def prefill(self, q, k, v, k_cache, v_cache, meta) -> torch.Tensor:
        out = torch.empty_like(q)
        start = 0
        for i, (q_len, k_len) in enumerate(zip(meta.query_lens_host, meta.context_lens_host)):
            end = start + q_len
            if k_len == q_len:
                keys, values, mask = k[start:end], v[start:end], None
            else:
                keys = gather_context(k_cache, meta.block_tables[i], k_len)
                values = gather_context(v_cache, meta.block_tables[i], k_len)
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

    def decode(self, q, k_cache, v_cache, meta) -> torch.Tensor:
        batch, width = meta.block_tables.shape
        keys = k_cache[meta.block_tables].flatten(1, 2)  # [batch, width * block_size, kv_heads, dim]
        values = v_cache[meta.block_tables].flatten(1, 2)
        positions = torch.arange(width * k_cache.shape[1], device=q.device)
        mask = (positions.unsqueeze(0) < meta.context_lens.unsqueeze(1))[:, None, None, :]
        out = self.attend(q.unsqueeze(2), keys.transpose(1, 2), values.transpose(1, 2), mask=mask)
        return out.squeeze(1)
