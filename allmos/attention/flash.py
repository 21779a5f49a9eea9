"""The flash-attn package: varlen prefill (paged when a prefix is cached) and paged decode.

FlashAttention-2 (`flash_attn`) is used when installed, else FlashAttention-3's
`flash_attn_interface`. Both need cache pages of a multiple of 256 tokens.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from allmos.attention.backend import AttentionBackend, GraphMode
from allmos.attention.metadata import AttentionMetadata
from allmos.errors import ConfigError
from allmos.registry import register

INSTALL = "pip install flash-attn --no-build-isolation (builds from source: FLASH_ATTN_CUDA_ARCHS=90 MAX_JOBS=16)"


def installed_flavor() -> str | None:
    for module in ("flash_attn", "flash_attn_interface"):
        if importlib.util.find_spec(module) is not None:
            return module
    return None


@dataclass
class FlashMetadata(AttentionMetadata):
    cu_seqlens_k: torch.Tensor | None = None  # [batch + 1] int32: where each sequence's keys start


@register("attention", "flash")
class FlashBackend(AttentionBackend):
    devices = ("cuda",)
    graph_mode = GraphMode.PER_BATCH

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.flavor = installed_flavor()
        self.lib = importlib.import_module(self.flavor)

    @classmethod
    def check(cls, options, where) -> None:
        if where.block_size % 256:
            raise ConfigError(
                "block_size", f"attention=flash needs pages of a multiple of 256 tokens, got {where.block_size}"
            )
        if where.kv_cache_dtype == "fp8":
            raise ConfigError(
                "attention",
                "flash cannot read the pages of kv_cache_dtype=fp8: FA2 has no FP8 path, and FA3 takes FP8 K/V "
                "only with FP8 queries and one descale factor per (sequence, kv head), where these pages carry "
                "one scale per (token, kv head); use attention=triton or attention=sdpa, or kv_cache_dtype=auto",
            )
        if installed_flavor() is None:
            raise ConfigError("attention", f"flash needs the flash-attn package, which is not installed: {INSTALL}")

    def build_metadata(self, common) -> FlashMetadata:
        return common.extend(
            FlashMetadata, cu_seqlens_k=F.pad(torch.cumsum(common.context_lens, 0, dtype=torch.int32), (1, 0))
        )

    def forward(self, q, k, v, k_cache, v_cache, meta, scales=None):  # never FP8 pages: `check` refuses them
        if self.flavor == "flash_attn_interface":
            return self.forward_fa3(q, k_cache, v_cache, meta)
        if not meta.is_prefill:
            return self.decode(q, k_cache, v_cache, meta)
        if meta.has_cached_context:
            return self.lib.flash_attn_varlen_func(
                q,
                k_cache,
                v_cache,
                meta.cu_seqlens_q,
                meta.cu_seqlens_k,
                meta.max_seqlen_q,
                meta.max_seqlen_k,
                softmax_scale=self.heads.scale,
                causal=True,
                block_table=meta.block_tables,
            )
        return self.lib.flash_attn_varlen_func(
            q,
            k,
            v,
            meta.cu_seqlens_q,
            meta.cu_seqlens_q,
            meta.max_seqlen_q,
            meta.max_seqlen_q,
            softmax_scale=self.heads.scale,
            causal=True,
        )

    def decode(self, q, k_cache, v_cache, meta):
        """One query token per sequence over its pages (FA2 calls the page table block_table, FA3 page_table)."""
        table = "page_table" if self.flavor == "flash_attn_interface" else "block_table"
        out = self.lib.flash_attn_with_kvcache(
            q.unsqueeze(1),
            k_cache,
            v_cache,
            cache_seqlens=meta.context_lens,
            softmax_scale=self.heads.scale,
            causal=True,
            **{table: meta.block_tables},
        )
        return out.squeeze(1)

    def forward_fa3(self, q, k_cache, v_cache, meta):
        if not meta.is_prefill:
            return self.decode(q, k_cache, v_cache, meta)
        return self.lib.flash_attn_with_kvcache(
            q,
            k_cache,
            v_cache,
            cache_seqlens=meta.context_lens,
            page_table=meta.block_tables,
            cu_seqlens_q=meta.cu_seqlens_q,
            max_seqlen_q=meta.max_seqlen_q,
            softmax_scale=self.heads.scale,
            causal=True,
        )
