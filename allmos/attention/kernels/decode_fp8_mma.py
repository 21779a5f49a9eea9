"""The decode's tile update on FP8 pages with both products in e4m3 (FP8_MMA): no widening of the pages.

The default FP8 path widens every e4m3 pair of K and V to float16 before its MMAs; profiled on an H100 that
kernel issues 3.4 times the instructions a cycle of the bf16 one and reads the KV at 82% of the DRAM
bandwidth against 92% (docs/results/2026-12-06-h100-session16). Here the tiles go into the products as they
are stored, which needs the other operand in e4m3 too, and both operands K-major:

  * scores transposed, S^T = K q^T [BLOCK_N, GROUP_PAD]: K [BLOCK_N, HEAD_DIM] as stored, q [GROUP_PAD,
    HEAD_DIM] rounded to e4m3 once per program, each query head with the scale of its largest magnitude
    over 448. The tile's tokens are the MMA's M (at 64 or more tokens, Hopper's warpgroup MMA in e4m3);
  * out transposed, O^T += V^T P^T [HEAD_DIM, GROUP_PAD]: P (in [0, 1] against the running maximum) times
    each token's V scale over the tile's largest V scale, rounded to e4m3 at a fixed scale of 448; the
    softmax sum uses the unrounded P.

What it costs in quality, emulated on SmolLM2-135M (session 16): perplexity ratio 1.0069 against 0.9974 for
the widening path, top-1 agreement 94.5% against 96.6%, mean KL 0.0067 against 0.0034 nats; rounding q
accounts for most of it.
"""

from __future__ import annotations

import triton
import triton.language as tl

from allmos.attention.kernels.common import _load_scales, _load_tile, _tile_pointers
from allmos.attention.kernels.decode_prefetch import _complete_first_tile
from allmos.triton_shared.fp8 import fp8_scaled, round_to_e4m3

E4M3_MAX = tl.constexpr(448.0)
_TINY = tl.constexpr(1e-30)


@triton.jit
def quantized_q(q):
    """q [GROUP_PAD, HEAD_DIM] -> (q in e4m3, each row's scale [GROUP_PAD]); zero rows get a tiny scale. Values
    are rounded in float32 before the cast (triton_shared.fp8: the interpreter's own cast rounds wrongly)."""
    scale = tl.maximum(tl.max(tl.abs(q.to(tl.float32)), axis=1), _TINY) / E4M3_MAX
    return fp8_scaled(q.to(tl.float32), scale).to(tl.float8e4nv), scale


@triton.jit
def mma_update(
    acc_t,
    l_i,
    m_i,
    q8,
    q_scale,
    qk_scale,
    in_range,
    k,
    v,
    k_scales,
    v_scales,
    MASK_BOUNDS: tl.constexpr,
):
    """The online-softmax update of (acc_t [HEAD_DIM, GROUP_PAD], l_i, m_i) with one tile of e4m3 K, V
    [BLOCK_N, HEAD_DIM] and their per-token scales [BLOCK_N]; q8, q_scale from quantized_q."""
    s_t = tl.dot(k, tl.trans(q8)) * (k_scales[:, None] * (q_scale * qk_scale)[None, :])
    if MASK_BOUNDS:
        s_t = tl.where(in_range[:, None], s_t, float("-inf"))
    m_new = tl.maximum(m_i, tl.max(s_t, 0))
    alpha = tl.exp2(m_i - m_new)
    p_t = tl.exp2(s_t - m_new[None, :])
    l_i = l_i * alpha + tl.sum(p_t, 0)
    v_max = tl.maximum(tl.max(tl.where(in_range, v_scales, 0.0), 0), _TINY)
    p8 = round_to_e4m3(p_t * (v_scales * (E4M3_MAX / v_max))[:, None]).to(tl.float8e4nv)
    acc_t = acc_t * alpha[None, :] + tl.dot(tl.trans(v), p8) * (v_max / E4M3_MAX)
    return acc_t, l_i, m_new


@triton.jit
def attend_tiles_mma(
    acc_t,
    l_i,
    m_i,
    q8,
    q_scale,
    tok_start,
    tok_end,
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
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """mma_update over the KV tokens [tok_start, tok_end) (tok_start a multiple of BLOCK_N), as
    common._attend_kv_tiles walks them."""
    for tile_start in range(tok_start, tok_end, BLOCK_N):
        tok, in_range, page, slot, k_ptrs, v_ptrs = _tile_pointers(
            bt_row_ptr, tile_start, tok_end, k_head_ptr, v_head_ptr, stride_kp, stride_kt, stride_vp, stride_vt,
            HEAD_DIM, BLOCK_SIZE, BLOCK_N,
        )  # fmt: skip
        k = _load_tile(k_ptrs, in_range, True)
        k_scales = _load_scales(k_scale_head_ptr, page, slot, stride_sp, in_range, True)
        v = _load_tile(v_ptrs, in_range, True)
        v_scales = _load_scales(v_scale_head_ptr, page, slot, stride_sp, in_range, True)
        acc_t, l_i, m_i = mma_update(acc_t, l_i, m_i, q8, q_scale, qk_scale, in_range, k, v, k_scales, v_scales, True)
    return acc_t, l_i, m_i


@triton.jit
def mma_prefetched_tile(
    acc_t,
    l_i,
    m_i,
    q8,
    q_scale,
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
):
    """decode_prefetch._attend_prefetched_tile with mma_update: the tile loaded before the wait, completed
    with the newest token's row, then its update (none for an empty split)."""
    tok, in_range, k, v, k_scales, v_scales = _complete_first_tile(
        ctx_len, tok, in_range, page, slot, k_ptrs, v_ptrs, k, v, k_scales, v_scales, k_scale_head_ptr,
        v_scale_head_ptr, stride_sp, True,
    )  # fmt: skip
    if tok_start < tok_end:
        acc_t, l_i, m_i = mma_update(acc_t, l_i, m_i, q8, q_scale, qk_scale, in_range, k, v, k_scales, v_scales, True)
    return acc_t, l_i, m_i
