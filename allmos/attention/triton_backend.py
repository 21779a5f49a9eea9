"""Our own Triton kernels over the paged cache: varlen prefill and split-KV decode with GQA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from allmos.attention.backend import AttentionBackend
from allmos.registry import PluginOptions, register
from allmos.triton_support import check_triton_device, triton_devices


@dataclass
class TritonOptions(PluginOptions):
    num_splits: Optional[int] = None  # decode splits per (sequence, kv head); None = heuristic
    longest_first: bool = True  # decode programs start with the longest contexts (no straggler at the end)


@register("attention", "triton", options=TritonOptions)
class TritonBackend(AttentionBackend):
    supports_cuda_graphs = True

    def __init__(self, options, heads):
        super().__init__(options, heads)
        from allmos.attention import triton_kernels

        self.kernels = triton_kernels

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return triton_devices()

    @classmethod
    def check(cls, config) -> None:
        check_triton_device("attention", "attention=triton", config.resolved_device)

    def build_metadata(self, meta):
        """Decode: the sequences by descending context length, sorted once per step on the device."""
        if not meta.is_prefill and self.options.longest_first:
            meta.backend_data = torch.argsort(meta.context_lens, descending=True)
        return meta

    def forward(self, q, k, v, k_cache, v_cache, meta):
        if meta.is_prefill:
            return self.kernels.paged_prefill_attention(
                q,
                k_cache,
                v_cache,
                meta.cu_seqlens_q,
                meta.context_lens,
                meta.block_tables,
                meta.max_seqlen_q,
                self.heads.scale,
            )
        return self.kernels.paged_decode_attention(
            q,
            k_cache,
            v_cache,
            meta.block_tables,
            meta.context_lens,
            self.heads.scale,
            num_splits=self.options.num_splits,
            seq_order=meta.backend_data,
        )
