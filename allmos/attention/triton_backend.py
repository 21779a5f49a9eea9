"""Our own Triton kernels over the paged cache: varlen prefill and split-KV decode with GQA."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch

from allmos.attention.backend import AttentionBackend, DecodeRopeInputs, GraphMode
from allmos.attention.metadata import AttentionMetadata
from allmos.errors import ConfigError
from allmos.registry import PluginOptions, register
from allmos.triton_shared.support import TritonPlugin, check_pdl_option

MIN_REGISTER_CAP, MAX_REGISTER_CAP = 64, 248  # per thread; the hardware's limit is 255


@dataclass
class TritonOptions(PluginOptions):
    num_splits: Optional[int] = None  # decode splits per (sequence, kv head); None = heuristic
    longest_first: bool = True  # decode programs start with the longest contexts (no straggler at the end)
    fused_combine: bool = True  # the last split of each sequence merges the splits (no combine kernel)
    pdl: bool = (
        True  # the decode kernel launches while the previous kernel runs (programmatic dependent launch, sm_90+)
    )
    decode_block_n: Optional[int] = None  # KV tokens per decode tile (16..256, a power of two); None = heuristic
    prefetch_kv: bool = True  # decode loads its first K/V tile before the PDL wait (tiles <= 64, launch resident)
    # The decode kernel's cap on registers per thread (ptx .maxnreg), so that more programs fit an SM; None:
    # heuristic (168 for FP8 pages, none for bf16); 0: no cap.
    decode_max_registers: Optional[int] = None
    # Shared-memory buffers for K/V tiles per decode program, 1 or 2: with 2 the next tile's copy runs while
    # the current tile is computed on. None: heuristic (decode_heuristics.default_kv_buffers).
    decode_kv_buffers: Optional[int] = None
    # Decode normalizes and rotates q and the new k and stores the new K/V inside the attention kernel (one
    # kernel per layer fewer). Off: on an H100 it bought nothing (2026-12-06, README).
    fuse_rope: bool = False


def _check_register_cap(cap) -> None:
    no_cap = cap is None or (type(cap) is int and cap == 0)
    in_range = type(cap) is int and MIN_REGISTER_CAP <= cap <= MAX_REGISTER_CAP and cap % 8 == 0
    if not (no_cap or in_range):
        span = f"{MIN_REGISTER_CAP}..{MAX_REGISTER_CAP}"
        raise ConfigError("attention.decode_max_registers", f"{cap} is not 0 (no cap) or a multiple of 8 in {span}")


def _check_kv_buffers(buffers) -> None:
    if buffers is not None and not (type(buffers) is int and buffers in (1, 2)):
        raise ConfigError("attention.decode_kv_buffers", f"{buffers!r} is not 1 or 2")


@dataclass
class TritonMetadata(AttentionMetadata):
    """What the decode kernel needs beyond the common metadata (shared by all layers of the step)."""

    seq_order: Optional[torch.Tensor] = None  # decode: sequences by descending context length, or None
    counters: Optional[torch.Tensor] = None  # decode: the backend's zeroed fused-combine counters, or None


@register("attention", "triton", options=TritonOptions)
class TritonBackend(TritonPlugin, AttentionBackend):
    graph_mode = GraphMode.PER_BATCH
    fp8_kv_cache = True  # the kernels read FP8 pages and their scales, dequantizing in registers

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        from allmos.attention.kernels import decode, decode_heuristics, decode_merge, prefill

        self.decode, self.decode_merge, self.prefill = decode, decode_merge, prefill
        self.decode_heuristics = decode_heuristics
        self.counters: Optional[torch.Tensor] = None  # grown to the largest decode batch seen
        buffers = options.decode_kv_buffers  # None: the kernel's default for the pages and device
        self.decode_stages = None if buffers is None else decode_heuristics.stages_for_kv_buffers(buffers)

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)
        check_pdl_option("attention.pdl", options.pdl, where.device)
        block_n = options.decode_block_n
        if block_n is not None and block_n not in (16, 32, 64, 128, 256):
            raise ConfigError("attention.decode_block_n", f"{block_n} is not a power of two in 16..256")
        _check_register_cap(options.decode_max_registers)
        _check_kv_buffers(options.decode_kv_buffers)
        if options.fuse_rope and where.kv_cache_dtype == "fp8":
            raise ConfigError("attention.fuse_rope", "stores K/V unquantized: not with kv_cache_dtype=fp8 (drop one)")

    def build_metadata(self, common) -> TritonMetadata:
        """Decode: the sequences by descending context length, sorted once per step on the device, and
        the fused combine's counters."""
        if common.is_prefill:
            return common.extend(TritonMetadata)
        order = torch.argsort(common.context_lens, descending=True) if self.options.longest_first else None
        fused = self.options.fused_combine
        counters = self.counters_for(common.batch_size, common.context_lens.device) if fused else None
        return common.extend(TritonMetadata, seq_order=order, counters=counters)

    def counters_for(self, batch: int, device: torch.device) -> torch.Tensor:
        """One persistent buffer, zeroed once: every decode call leaves it zeroed again. It may only
        grow outside CUDA-graph capture (the graph runner warms up its largest batch first)."""
        needed = batch * self.heads.num_kv_heads
        if self.counters is None or self.counters.numel() < needed or self.counters.device != device:
            if device.type == "cuda" and torch.cuda.is_current_stream_capturing():
                raise RuntimeError(
                    f"decode counters for batch {batch} must exist before CUDA-graph capture; "
                    "run the largest batch eagerly first"
                )
            self.counters = self.decode_merge.decode_counters(batch, self.heads.num_kv_heads, device)
        return self.counters

    def fuses_rope(self) -> bool:
        return self.options.fuse_rope

    def forward_decode_fused(self, q, k, v, k_cache, v_cache, meta, rope: DecodeRopeInputs):
        q_norm, k_norm = rope.q_norm, rope.k_norm
        weights = (None, None) if q_norm is None else (q_norm.weight, k_norm.weight)
        eps = 0.0 if q_norm is None else q_norm.eps
        new = self.decode.DecodeRope(
            k, v, rope.positions, meta.slot_mapping, *weights, eps, rope.rotary.cos, rope.rotary.sin
        )
        return self.decode_attention(q, k_cache, v_cache, meta, None, new)

    def forward(self, q, k, v, k_cache, v_cache, meta, scales=None):
        if meta.is_prefill:
            return self.prefill.paged_prefill_attention(
                q,
                k_cache,
                v_cache,
                meta.cu_seqlens_q,
                meta.context_lens,
                meta.block_tables,
                meta.max_seqlen_q,
                self.heads.scale,
                scales=scales,
            )
        return self.decode_attention(q, k_cache, v_cache, meta, scales)

    def decode_attention(self, q, k_cache, v_cache, meta, scales, rope=None):
        return self.decode.paged_decode_attention(
            q,
            k_cache,
            v_cache,
            meta.block_tables,
            meta.context_lens,
            self.heads.scale,
            num_splits=self.options.num_splits,
            seq_order=meta.seq_order,
            fused_combine=self.options.fused_combine,
            counters=meta.counters,
            pdl=self.options.pdl,
            block_n=self.options.decode_block_n,
            scales=scales,
            prefetch_kv=self.options.prefetch_kv,
            rope=rope,
            max_registers=self.options.decode_max_registers,
            num_stages=self.decode_stages,
        )
