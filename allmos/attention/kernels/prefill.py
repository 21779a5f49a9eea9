"""Paged varlen prefill attention: causal, aligned to the end of each sequence's context."""

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

# ---------------------------------------------------------------------------------------------------------
# Prefill: varlen causal attention over the paged cache
# ---------------------------------------------------------------------------------------------------------


# The block-table width changes from step to step: a specialised kernel per width class (1, multiple of
# 16, other) would compile inside timed runs.
@triton.jit(do_not_specialize=["stride_btb"])
def _prefill_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    out_ptr,
    cu_seqlens_q_ptr,
    context_lens_ptr,
    block_tables_ptr,
    k_scale_ptr,
    v_scale_ptr,
    qk_scale,
    stride_qt,
    stride_qh,
    stride_kp,
    stride_kt,
    stride_kh,
    stride_vp,
    stride_vt,
    stride_vh,
    stride_vd,
    stride_btb,
    stride_ot,
    stride_oh,
    stride_sp,
    stride_sh,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    FP8: tl.constexpr,
    V_DIM_MAJOR: tl.constexpr,
):
    """One program = BLOCK_M query rows of one (sequence, query head)."""
    m_block = tl.program_id(0)
    batch_idx = tl.program_id(1)
    head = tl.program_id(2)

    q_start = tl.load(cu_seqlens_q_ptr + batch_idx)
    q_len = tl.load(cu_seqlens_q_ptr + batch_idx + 1) - q_start
    first_row = m_block * BLOCK_M
    if first_row >= q_len:
        return
    ctx_len = tl.load(context_lens_ptr + batch_idx)
    prefix_len = ctx_len - q_len  # queries are the last q_len tokens of the context

    offs_m = first_row + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_mask = offs_m < q_len
    q_rows = (q_start + offs_m).to(tl.int64)
    q = tl.load(
        q_ptr + q_rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_mask[:, None], other=0.0
    )
    q_pos = prefix_len + offs_m

    # Tokens [0, full_end) are visible to every row of the tile; [full_end, causal_end) need the causal mask.
    full_end = (prefix_len + first_row + 1) // BLOCK_N * BLOCK_N
    causal_end = prefix_len + tl.minimum(first_row + BLOCK_M, q_len)

    kv_head = head // GROUP
    bt_row_ptr = block_tables_ptr + batch_idx.to(tl.int64) * stride_btb
    k_head_ptr = k_cache_ptr + kv_head * stride_kh
    v_head_ptr = v_cache_ptr + kv_head * stride_vh
    k_scale_head_ptr = k_scale_ptr + kv_head * stride_sh
    v_scale_head_ptr = v_scale_ptr + kv_head * stride_sh
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _attend_kv_tiles(
        acc,
        l_i,
        m_i,
        q,
        q_pos,
        0,
        full_end,
        bt_row_ptr,
        k_head_ptr,
        v_head_ptr,
        stride_kp,
        stride_kt,
        stride_vp,
        stride_vt,
        qk_scale,
        k_scale_head_ptr,
        v_scale_head_ptr,
        stride_sp,
        HEAD_DIM,
        BLOCK_SIZE,
        BLOCK_N,
        MASK_BOUNDS=False,
        CAUSAL=False,
        FP8=FP8,
        stride_vd=stride_vd,
        V_DIM_MAJOR=V_DIM_MAJOR,
    )
    acc, l_i, m_i = _attend_kv_tiles(
        acc,
        l_i,
        m_i,
        q,
        q_pos,
        full_end,
        causal_end,
        bt_row_ptr,
        k_head_ptr,
        v_head_ptr,
        stride_kp,
        stride_kt,
        stride_vp,
        stride_vt,
        qk_scale,
        k_scale_head_ptr,
        v_scale_head_ptr,
        stride_sp,
        HEAD_DIM,
        BLOCK_SIZE,
        BLOCK_N,
        MASK_BOUNDS=True,
        CAUSAL=True,
        FP8=FP8,
        stride_vd=stride_vd,
        V_DIM_MAJOR=V_DIM_MAJOR,
    )

    o = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    out_ptrs = out_ptr + q_rows[:, None] * stride_ot + head * stride_oh + offs_d[None, :]
    tl.store(out_ptrs, o.to(out_ptr.dtype.element_ty), mask=row_mask[:, None])


def _prefill_tiles(head_dim: int, elem_size: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps). 64x64 with 4 warps (2 stages) was the best or within 3% of the best of
    8 tile configs on every shape of allmos.microbench.kernel_bench (H100, bf16, head_dim 128; 128x64x8 warps
    was 10-25% slower). Halve BLOCK_N when the K/V tiles would crowd shared memory (fp32, head_dim 256)."""
    if head_dim * elem_size <= 256:
        return 64, 64, 4
    return 64, 32, 4


def paged_prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    context_lens: torch.Tensor,
    block_tables: torch.Tensor,
    max_seqlen_q: int,
    scale: float,
    out: torch.Tensor | None = None,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int = 2,
    scales=None,
) -> torch.Tensor:
    """Varlen causal prefill: q [total_q, num_heads, head_dim] -> out (same shape).

    Sequence i owns q rows [cu_seqlens_q[i], cu_seqlens_q[i+1]) which are the last positions of its
    context_lens[i] KV tokens (all already in the cache). max_seqlen_q (host int) only sizes the grid.
    FP8 caches (float8 e4m3) come with their scales (`scales`, a KVScales). v_cache may be a view of dim-major
    pages, as in paged_decode_attention.
    """
    block_size, _, group = _check_cache(q, k_cache, v_cache, scales)
    _check_index_tensors(block_tables=block_tables, context_lens=context_lens, cu_seqlens_q=cu_seqlens_q)
    total_q, num_heads, head_dim = q.shape
    out = _output_like(q, out)
    batch = cu_seqlens_q.shape[0] - 1
    if total_q == 0 or batch <= 0 or max_seqlen_q <= 0:
        return out
    default_m, default_n, default_warps = _prefill_tiles(head_dim, q.element_size())
    block_m = block_m or default_m
    block_n = block_n or default_n
    num_warps = num_warps or default_warps

    grid = (triton.cdiv(max_seqlen_q, block_m), batch, num_heads)
    _prefill_kernel[grid](
        q,
        k_cache,
        v_cache,
        out,
        cu_seqlens_q,
        context_lens,
        block_tables,
        *_fp8_args(scales, q)[:2],
        scale * _LOG2E,
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
        HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        FP8=scales is not None,
        V_DIM_MAJOR=v_dim_major(v_cache),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out
