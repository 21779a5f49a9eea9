"""Paged decode attention: split-KV (flash-decoding) with grouped-query heads sharing each KV tile."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.attention.kernels.common import LOG2E as _LOG2E
from allmos.attention.kernels.common import (
    _attend_kv_tiles,
    _check_cache,
    _check_index_tensors,
    _fp8_args,
    _output_like,
    v_dim_major,
)
from allmos.attention.kernels.decode_heuristics import (
    _num_sms,
    compute_capability,
    default_block_n,
    default_max_registers,
    default_num_splits,
    default_num_stages,
)
from allmos.attention.kernels.decode_merge import (
    _check_counters,
    _decode_combine_kernel,
    _heads_per_merge,
    _splits_with_tokens,
    _store_or_merge_fused,
    decode_counters,
)
from allmos.attention.kernels.decode_prefetch import (
    _attend_prefetched_tile,
    _prefetch_first_tile,
    prefetches_first_tile,
)
from allmos.attention.kernels.decode_rope import DecodeRope, _attend_newest_token, _rotated_q, rope_args
from allmos.triton_shared.pdl import wait_for_previous_kernel
from allmos.triton_shared.rope import rope_cos_sin
from allmos.triton_shared.support import pdl_launch

# ---------------------------------------------------------------------------------------------------------
# Decode: split-KV (flash-decoding)
# ---------------------------------------------------------------------------------------------------------


# The block-table width changes from step to step: a specialised kernel per width class (1, multiple of
# 16, other) would compile inside timed runs.
@triton.jit(do_not_specialize=["stride_btb"])
def _decode_split_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    context_lens_ptr,
    seq_order_ptr,
    out_ptr,
    partial_out_ptr,
    partial_lse_ptr,
    counters_ptr,
    k_scale_ptr,
    v_scale_ptr,
    new_k_ptr,
    new_v_ptr,
    positions_ptr,
    slot_mapping_ptr,
    q_norm_ptr,
    k_norm_ptr,
    cos_ptr,
    sin_ptr,
    eps,
    stride_nkb,
    stride_nkh,
    stride_nvb,
    stride_nvh,
    qk_scale,
    num_splits,
    stride_qb,
    stride_qh,
    stride_kp,
    stride_kt,
    stride_kh,
    stride_vp,
    stride_vt,
    stride_vh,
    stride_vd,
    stride_btb,
    stride_ob,
    stride_oh,
    stride_sp,
    stride_sh,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DIRECT_OUT: tl.constexpr,
    ORDERED: tl.constexpr,
    FUSED_COMBINE: tl.constexpr,
    HEADS_PER_MERGE: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
    USE_PDL: tl.constexpr,
    FP8: tl.constexpr,
    V_DIM_MAJOR: tl.constexpr,
    PREFETCH: tl.constexpr,
    FUSE_ROPE: tl.constexpr,
    HAS_NORM: tl.constexpr,
):
    """One program = one (kv head, sequence, split). Its GROUP query heads share every K/V tile it loads.

    With FUSED_COMBINE the last split of a (sequence, kv head) to finish merges the splits' partials
    itself (see _store_or_merge_fused) instead of a second kernel doing it. The split count is fixed by
    host-known sizes (a CUDA graph's), so at short contexts most splits hold no tile: with the fused
    merge they return at once rather than wait for the previous kernel and publish nothing.

    The grid runs kv heads fastest, so a sequence's programs start together; with ORDERED, the i-th
    sequence started is seq_order[i] (longest context first), so the programs that start last are the
    short ones and no long sequence is left running alone at the end of the launch.

    Why tl.dot with the group padded to GROUP_PAD >= 16 rows instead of a broadcast-multiply-sum: decode is
    bound by HBM bandwidth, and the tensor cores make the padded rows free; the broadcast form materializes
    GROUP x BLOCK_N x HEAD_DIM fp32 products in registers (64 KB per program for group 8, BLOCK_N 64,
    head_dim 128), which spills or forces tiny tiles, and tiny tiles leave too few bytes in flight.

    With PREFETCH the split's first K/V tile is loaded before the wait for the previous kernel, all but
    the newest token, whose row is read after it (decode_prefetch.py says why that is safe).

    With FUSE_ROPE q and the newest token's k, v come raw (before the q/k norm, if HAS_NORM, and RoPE):
    the program normalizes and rotates them, stores k, v and attends to the newest token from registers
    (decode_rope.py).
    """
    kv_head = tl.program_id(0)
    batch_idx = tl.program_id(1)
    if ORDERED:
        batch_idx = tl.load(seq_order_ptr + batch_idx).to(tl.int32)
    split = tl.program_id(2)

    ctx_len = tl.load(context_lens_ptr + batch_idx)
    num_tiles = tl.cdiv(ctx_len, BLOCK_N)
    tiles_per_split = tl.cdiv(num_tiles, num_splits)
    tok_start = split * tiles_per_split * BLOCK_N
    tok_end = tl.minimum(tok_start + tiles_per_split * BLOCK_N, ctx_len)
    owns_newest = (tok_start < tok_end) & (tok_end == ctx_len)
    if FUSED_COMBINE and split >= _splits_with_tokens(ctx_len, num_splits, BLOCK_N):
        return  # an empty split: the merge neither waits for nor reads it, and it writes nothing
    cached_end = tok_end  # the tokens read from the cache: all but the newest one with FUSE_ROPE
    newest_in_cache = ctx_len  # with FUSE_ROPE, 0: the prefetched tile completes no row from the cache
    if FUSE_ROPE:
        cached_end = tl.minimum(tok_end, ctx_len - 1)
        newest_in_cache = 0
        cos, sin = rope_cos_sin(cos_ptr, sin_ptr, tl.load(positions_ptr + batch_idx), HEAD_DIM // 2)
    if PREFETCH:  # the head pointers again after the wait: without PREFETCH the code stays as it was
        first = _prefetch_first_tile(
            block_tables_ptr + batch_idx.to(tl.int64) * stride_btb, tok_start, cached_end, ctx_len,
            k_cache_ptr + kv_head * stride_kh, v_cache_ptr + kv_head * stride_vh, k_scale_ptr + kv_head * stride_sh,
            v_scale_ptr + kv_head * stride_sh, stride_kp, stride_kt, stride_vp, stride_vt, stride_sp,
            HEAD_DIM, BLOCK_SIZE, BLOCK_N, FP8, stride_vd,
        )  # fmt: skip
    # The step's index tensors are written before the forward's first kernel, a plain launch, so they may
    # be read before the wait (positions and cos/sin too); q, the cache and the workspaces only after it
    # (but see PREFETCH).
    wait_for_previous_kernel(USE_PDL)

    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    q_heads = kv_head * GROUP + offs_g
    head_mask = offs_g < GROUP
    if FUSE_ROPE:
        q = _rotated_q(
            q_ptr + batch_idx * stride_qb, q_heads, head_mask, stride_qh, q_norm_ptr, cos, sin, eps, GROUP_PAD,
            HEAD_DIM, HAS_NORM,
        )  # fmt: skip
    else:
        q = tl.load(
            q_ptr + batch_idx * stride_qb + q_heads[:, None] * stride_qh + offs_d[None, :],
            mask=head_mask[:, None],
            other=0.0,
        )

    acc = tl.zeros([GROUP_PAD, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
    m_i = tl.full([GROUP_PAD], float("-inf"), dtype=tl.float32)
    loop_start = tok_start
    if PREFETCH:
        acc, l_i, m_i = _attend_prefetched_tile(
            acc, l_i, m_i, q, offs_g, qk_scale, tok_start, cached_end, newest_in_cache, *first,
            k_scale_ptr + kv_head * stride_sh, v_scale_ptr + kv_head * stride_sh, stride_sp, FP8,
        )  # fmt: skip
        loop_start = tok_start + BLOCK_N
    acc, l_i, m_i = _attend_kv_tiles(
        acc, l_i, m_i, q, offs_g, loop_start, cached_end, block_tables_ptr + batch_idx.to(tl.int64) * stride_btb,
        k_cache_ptr + kv_head * stride_kh, v_cache_ptr + kv_head * stride_vh, stride_kp, stride_kt, stride_vp,
        stride_vt, qk_scale, k_scale_ptr + kv_head * stride_sh, v_scale_ptr + kv_head * stride_sh, stride_sp,
        HEAD_DIM, BLOCK_SIZE, BLOCK_N, MASK_BOUNDS=True, CAUSAL=False, FP8=FP8, stride_vd=stride_vd,
        V_DIM_MAJOR=V_DIM_MAJOR,
    )  # fmt: skip
    if FUSE_ROPE:  # noqa: SIM102 (a constexpr branch, then a runtime one)
        if owns_newest:
            slot = tl.load(slot_mapping_ptr + batch_idx).to(tl.int64)
            page_off = (slot // BLOCK_SIZE) * stride_kp + (slot % BLOCK_SIZE) * stride_kt + kv_head * stride_kh
            acc, l_i, m_i = _attend_newest_token(
                acc, l_i, m_i, q, qk_scale, new_k_ptr + batch_idx * stride_nkb + kv_head * stride_nkh,
                new_v_ptr + batch_idx * stride_nvb + kv_head * stride_nvh, k_norm_ptr, cos, sin, eps,
                k_cache_ptr + page_off, v_cache_ptr + page_off, slot >= 0, HEAD_DIM, HAS_NORM,
            )  # fmt: skip

    # An empty split (or context_len == 0) leaves l_i == 0: it yields o = 0 and lse = -inf.
    has_tokens = l_i > 0
    l_safe = tl.where(has_tokens, l_i, 1.0)
    o = acc / l_safe[:, None]
    out_ptrs = out_ptr + batch_idx * stride_ob + q_heads[:, None] * stride_oh + offs_d[None, :]
    if DIRECT_OUT:
        tl.store(out_ptrs, o.to(out_ptr.dtype.element_ty), mask=head_mask[:, None])
    else:
        lse = tl.where(has_tokens, m_i + tl.log2(l_safe), float("-inf"))
        num_heads = tl.num_programs(0) * GROUP
        # Workspace layout: partial_out [B, num_heads, num_splits, D], partial_lse [B, num_heads, num_splits].
        rows = (batch_idx * num_heads + q_heads) * num_splits + split
        if FUSED_COMBINE:
            _store_or_merge_fused(
                o,
                lse,
                out_ptrs,
                rows,
                head_mask,
                partial_out_ptr,
                partial_lse_ptr,
                counters_ptr + batch_idx * tl.num_programs(0) + kv_head,
                out_ptr + batch_idx * stride_ob + kv_head * GROUP * stride_oh,
                (batch_idx * num_heads + kv_head * GROUP) * num_splits,
                split,
                _splits_with_tokens(ctx_len, num_splits, BLOCK_N),
                num_splits,
                stride_oh,
                GROUP,
                HEADS_PER_MERGE,
                SPLITS_PAD,
                HEAD_DIM,
            )
        else:
            tl.store(partial_lse_ptr + rows, lse, mask=head_mask)
            tl.store(partial_out_ptr + rows[:, None] * HEAD_DIM + offs_d[None, :], o, mask=head_mask[:, None])


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    num_splits: int | None = None,
    out: torch.Tensor | None = None,
    seq_order: torch.Tensor | None = None,
    *,
    fused_combine: bool = True,
    counters: torch.Tensor | None = None,
    pdl: bool = False,
    block_n: int | None = None,
    num_warps: int = 4,
    num_stages: int | None = None,
    scales=None,
    prefetch_kv: bool = True,
    rope: DecodeRope | None = None,
    max_registers: int | None = None,
) -> torch.Tensor:
    """Single-token attention for each sequence: q [batch, num_heads, head_dim] -> out (same shape).

    context_lens[b] KV tokens (the current one included) must already be in the cache; a zero length
    yields zeros. seq_order (optional, [batch] integer permutation, e.g. the sequences by descending
    context length) is the order in which the sequences' programs start.

    With several splits, fused_combine merges them inside the split kernel (the last split of each
    (sequence, kv head) to finish does it) instead of in a second kernel. It needs `counters`, an int32
    buffer of >= batch * num_kv_heads zeros (decode_counters) that each call leaves zeroed; without
    one, a fresh buffer is zeroed per call (an extra memset). With pdl (sm_90+) the split kernel is
    launched with programmatic dependent launch: it starts while the previous kernel runs and waits for
    it after reading the step's context lengths. With prefetch_kv each program also loads its split's
    first K/V tile before that wait, all but the newest token (context_lens[b] - 1), which the kernel
    right before may still be writing, so no kernel still running may write the cache's older positions;
    it applies where the tile fits (decode_prefetch.prefetches_first_tile: tiles of up to 64 tokens,
    launches resident at once) and changes no result. block_n / num_warps / num_stages (None:
    default_num_stages) are tuning knobs for benchmarks, and so is max_registers, the compiler's cap on
    registers per thread (ptx .maxnreg; None: default_max_registers, 168 for FP8 pages so that 3 programs fit
    an SM instead of 2, none for bf16; 0: no cap): fewer registers can fit more programs on an SM, at the risk
    of spills; kernel_resources reports both.
    FP8 caches (float8 e4m3) come with their scales (`scales`, a KVScales). v_cache may also be a view of pages
    stored [num_blocks, H, D, block_size] (token stride 1; common.v_dim_major): its tiles are read whole, so the
    positions past each context must hold finite values.

    With `rope` (a DecodeRope) q and the new tokens' k, v are raw (before q/k norm and RoPE) and the
    kernel normalizes, rotates and stores them itself (decode_rope.py): the cache must then hold all but
    the newest token (context_lens[b] - 1), and must have q's dtype (no FP8).
    """
    block_size, num_kv_heads, group = _check_cache(q, k_cache, v_cache, scales)
    _check_index_tensors(block_tables=block_tables, context_lens=context_lens)
    batch, num_heads, head_dim = q.shape
    out = _output_like(q, out)
    if batch == 0:
        return out
    if num_splits is None:
        max_context = block_tables.shape[1] * block_size
        num_splits = default_num_splits(batch, num_kv_heads, max_context, _num_sms(q.device))
    if num_splits < 1:
        raise ValueError(f"num_splits must be >= 1; got {num_splits}")
    if seq_order is not None and seq_order.shape != (batch,):
        raise ValueError(f"seq_order must be [batch={batch}]; got {tuple(seq_order.shape)}")
    block_n = block_n or default_block_n(batch, num_kv_heads, _num_sms(q.device))
    if max_registers is None:
        max_registers = default_max_registers(scales is not None)
    num_stages = num_stages or default_num_stages(scales is not None, compute_capability(q.device))

    direct = num_splits == 1
    fused = fused_combine and not direct
    if direct:
        partial_out = partial_lse = out  # unused by the kernel
    else:
        f32 = {"dtype": torch.float32, "device": q.device}
        partial_out = torch.empty((batch, num_heads, num_splits, head_dim), **f32)
        partial_lse = torch.empty((batch, num_heads, num_splits), **f32)
    if not fused:
        counters = out  # unused by the kernel
    elif counters is None:
        counters = decode_counters(batch, num_kv_heads, q.device)
    else:
        _check_counters(counters, batch, num_kv_heads, q.device)
    splits_pad = triton.next_power_of_2(num_splits)
    rope_arguments, rope_flags = rope_args(rope, q, k_cache)
    prefetch = prefetches_first_tile(prefetch_kv, num_kv_heads * batch * num_splits, block_n, _num_sms(q.device))

    _decode_split_kernel[(num_kv_heads, batch, num_splits)](
        q,
        k_cache,
        v_cache,
        block_tables,
        context_lens,
        context_lens if seq_order is None else seq_order,  # not read without ORDERED
        out,
        partial_out,
        partial_lse,
        counters,
        *_fp8_args(scales, q)[:2],
        *rope_arguments,
        scale * _LOG2E,
        num_splits,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        v_cache.stride(0),
        v_cache.stride(1),
        v_cache.stride(2),
        v_cache.stride(3),
        block_tables.stride(0),
        out.stride(0),
        out.stride(1),
        *_fp8_args(scales, q)[2:],
        GROUP=group,
        GROUP_PAD=max(16, triton.next_power_of_2(group)),
        HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size,
        BLOCK_N=block_n,
        DIRECT_OUT=direct,
        ORDERED=seq_order is not None,
        FUSED_COMBINE=fused,
        HEADS_PER_MERGE=_heads_per_merge(group, splits_pad, head_dim) if fused else 1,
        SPLITS_PAD=splits_pad if fused else 1,
        FP8=scales is not None,
        V_DIM_MAJOR=v_dim_major(v_cache),
        PREFETCH=prefetch,
        **rope_flags,
        num_warps=num_warps,
        num_stages=num_stages,
        **({"maxnreg": max_registers} if max_registers else {}),
        **pdl_launch("paged_decode_attention", pdl, q.device),
    )
    if not direct and not fused:
        _decode_combine_kernel[(batch, num_heads)](
            partial_out,
            partial_lse,
            out,
            num_splits,
            out.stride(0),
            out.stride(1),
            HEAD_DIM=head_dim,
            SPLITS_PAD=splits_pad,
            num_warps=4 if head_dim * num_splits >= 2048 else 1,
        )
    return out
