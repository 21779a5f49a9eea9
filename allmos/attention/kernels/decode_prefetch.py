"""The decode split's first K/V tile, loaded before the programmatic-dependent-launch wait (PREFETCH).

Why it is safe: within a step, the kernels before the decode attention write only the newest token's K/V
(position context_len - 1: the rope kernel's fused store or the KV store kernel) and the FP8 scales beside
it; every earlier position was written by an earlier step, which ended before this step's first, plainly
launched kernel began. So each program reads its split's first tile, all but the newest token, while the
previous kernel still runs, then waits, then reads the newest token's row (and scales) if it lies in that
tile. The block table is the step's index tensor, written before the forward, like the context lengths.
Without PDL the wait is a no-op and the tile's loads merely start before q's.

Registers: the tile stays in registers across the wait, where the tile loop streams its tiles through
shared memory. Compiled for sm_90 (ptxas; bf16, group 2, head_dim 128, 4 warps) the kernel needs 115 -> 149
registers a thread at BLOCK_N 64 (4 -> 3 programs per SM; FP8 pages 147 -> 168, 3 either way) and 127 ->
255 at 128 (3 -> 2; FP8 199 -> 255 and a spill). Prefetching K alone kept 64-token tiles at 109-115
registers but left V's load after the wait (a DRAM round trip there), and still took 197-255 at 128. So
the whole tile is prefetched, only at tiles of up to 64 tokens, and only when the whole launch is resident
at once at 3 programs per SM: a larger grid would run in two waves where it ran in one, and its SMs have
other programs to hide the latency with anyway.
"""

from __future__ import annotations

import triton
import triton.language as tl

from allmos.attention.kernels.common import _tile_kv, _tile_pointers, _update_with_tile

_MAX_BLOCK_N = 64
_PROGRAMS_PER_SM = 3  # the prefetching kernel's occupancy at BLOCK_N 64 (149 registers x 128 threads)


@triton.jit
def _prefetch_first_tile(
    bt_row_ptr,
    tok_start,
    tok_end,
    ctx_len,
    k_head_ptr,
    v_head_ptr,
    k_scale_head_ptr,
    v_scale_head_ptr,
    stride_kp,
    stride_kt,
    stride_vp,
    stride_vt,
    stride_sp,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    FP8: tl.constexpr,
    stride_vd=1,
):
    """Before the wait: K and V (and their FP8 scales) of the tile at tok_start of the split
    [tok_start, tok_end), every token but the newest (context_len - 1, maybe not written yet), with the
    tile's positions and pointers for the newest token's row after the wait."""
    tok, in_range, page, slot, k_ptrs, v_ptrs = _tile_pointers(
        bt_row_ptr, tok_start, tok_end, k_head_ptr, v_head_ptr, stride_kp, stride_kt, stride_vp, stride_vt,
        HEAD_DIM, BLOCK_SIZE, BLOCK_N, stride_vd,
    )  # fmt: skip
    settled = tok < tl.minimum(tok_end, ctx_len - 1)
    k, v, k_scales, v_scales = _tile_kv(
        k_ptrs, v_ptrs, k_scale_head_ptr, v_scale_head_ptr, page, slot, stride_sp, settled, True, FP8
    )
    return tok, in_range, page, slot, k_ptrs, v_ptrs, k, v, k_scales, v_scales


@triton.jit
def _complete_first_tile(
    ctx_len,
    tok,
    in_range,
    page,
    slot,
    k_ptrs,
    v_ptrs,
    k,
    v,
    k_scales,
    v_scales,
    k_scale_head_ptr,
    v_scale_head_ptr,
    stride_sp,
    FP8: tl.constexpr,
):
    """After the wait: the newest token's K and V rows (and scales) merged into the prefetched tile, read
    only where that token lies in the tile."""
    newest = tok == ctx_len - 1
    k = tl.load(k_ptrs, mask=newest[:, None], other=k)
    v = tl.load(v_ptrs, mask=newest[:, None], other=v)
    if FP8:
        k_scales = tl.load(k_scale_head_ptr + (page * stride_sp + slot), mask=newest, other=k_scales)
        v_scales = tl.load(v_scale_head_ptr + (page * stride_sp + slot), mask=newest, other=v_scales)
    return tok, in_range, k, v, k_scales, v_scales


@triton.jit
def _attend_prefetched_tile(
    acc,
    l_i,
    m_i,
    q,
    q_rows,
    qk_scale,
    tok_start,
    tok_end,
    ctx_len,
    tok,
    in_range,
    page,
    slot,
    k_ptrs,
    v_ptrs,
    k,
    v,
    k_scales,
    v_scales,
    k_scale_head_ptr,
    v_scale_head_ptr,
    stride_sp,
    FP8: tl.constexpr,
):
    """After the wait: the prefetched tile completed, then its online-softmax update; an empty split (or
    context 0) leaves (acc, l_i, m_i) as they are."""
    tok, in_range, k, v, k_scales, v_scales = _complete_first_tile(
        ctx_len, tok, in_range, page, slot, k_ptrs, v_ptrs, k, v, k_scales, v_scales, k_scale_head_ptr,
        v_scale_head_ptr, stride_sp, FP8,
    )  # fmt: skip
    if tok_start < tok_end:
        acc, l_i, m_i = _update_with_tile(
            acc, l_i, m_i, q, q_rows, tok, in_range, k, v, k_scales, v_scales, qk_scale, True, False, FP8
        )
    return acc, l_i, m_i


def prefetches_first_tile(prefetch_kv: bool, programs: int, block_n: int, num_sms: int) -> bool:
    """Whether a decode launch of `programs` programs of `block_n`-token tiles loads its first tile before
    the wait (the PREFETCH constexpr) when asked to (prefetch_kv): see the module's docstring."""
    return prefetch_kv and block_n <= _MAX_BLOCK_N and programs <= _PROGRAMS_PER_SM * num_sms
