"""Pieces shared by the Triton attention kernels: the paged KV tile loop and host-side checks
(layout and conventions: see __init__.py)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.triton_shared.fp8 import check_scale_pages

LOG2E = 1.4426950408889634

# ---------------------------------------------------------------------------------------------------------
# Shared inner loop
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _tile_pages(bt_row_ptr, tile_start, offs_n, in_range, BLOCK_SIZE: tl.constexpr, BLOCK_N: tl.constexpr):
    """(page, slot in page) of tokens tile_start + offs_n; page is int64 (caches can pass 2**31 elements)."""
    if BLOCK_N <= BLOCK_SIZE:
        # tile_start is a multiple of BLOCK_N, which divides BLOCK_SIZE: the tile lies in one page.
        page = tl.load(bt_row_ptr + tile_start // BLOCK_SIZE).to(tl.int64)
        slot = tile_start % BLOCK_SIZE + offs_n
    else:
        tok = tile_start + offs_n
        page = tl.load(bt_row_ptr + tok // BLOCK_SIZE, mask=in_range, other=0).to(tl.int64)
        slot = tok % BLOCK_SIZE
    return page, slot


@triton.jit
def _tile_pointers(
    bt_row_ptr,
    tile_start,
    tok_end,
    k_head_ptr,
    v_head_ptr,
    stride_kp,
    stride_kt,
    stride_vp,
    stride_vt,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    stride_vd=1,
    V_DIM_MAJOR: tl.constexpr = False,
):
    """Tokens tile_start + [0, BLOCK_N): their positions, whether they lie before tok_end, their (page, slot)
    and the pointers [BLOCK_N, HEAD_DIM] to their K and V rows. Reads only the block table.

    V_DIM_MAJOR: V's pages are stored [H, HEAD_DIM, BLOCK_SIZE] (token stride 1, dim stride stride_vd), so
    a tile within one page is BLOCK_N contiguous tokens per dim, which the compiler can copy in wide,
    asynchronous loads (stated here, since the slot's start is a runtime value)."""
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    tok = tile_start + offs_n
    in_range = tok < tok_end
    page, slot = _tile_pages(bt_row_ptr, tile_start, offs_n, in_range, BLOCK_SIZE, BLOCK_N)
    k_ptrs = k_head_ptr + (page * stride_kp + slot * stride_kt)[:, None] + offs_d[None, :]
    if V_DIM_MAJOR and BLOCK_N <= BLOCK_SIZE:
        first_slot = tl.multiple_of(tile_start % BLOCK_SIZE, BLOCK_N)
        v_ptrs = v_head_ptr + page * stride_vp + (first_slot + offs_n)[:, None] + offs_d[None, :] * stride_vd
    else:
        v_ptrs = v_head_ptr + (page * stride_vp + slot * stride_vt)[:, None] + offs_d[None, :] * stride_vd
    return tok, in_range, page, slot, k_ptrs, v_ptrs


@triton.jit
def _load_tile(ptrs, load_mask, MASKED: tl.constexpr):
    """A [BLOCK_N, HEAD_DIM] tile; with MASKED, the rows outside load_mask are not read (zeros)."""
    if MASKED:
        return tl.load(ptrs, mask=load_mask[:, None], other=0.0)
    return tl.load(ptrs)


@triton.jit
def _load_v_tile(ptrs, load_mask, MASKED: tl.constexpr, V_DIM_MAJOR: tl.constexpr):
    """A [BLOCK_N, HEAD_DIM] tile of V. Dim-major pages are read whole, since a mask along the contiguous
    tokens would split the wide loads into bytes: the tokens past the context are read too and must hold
    finite values (their probabilities are 0)."""
    if V_DIM_MAJOR:
        return tl.load(ptrs)
    return _load_tile(ptrs, load_mask, MASKED)


@triton.jit
def _load_scales(scale_head_ptr, page, slot, stride_sp, load_mask, MASKED: tl.constexpr):
    """(FP8) The tile's per-token scales [BLOCK_N] (at page * stride_sp + slot from the head's pointer)."""
    if MASKED:
        return tl.load(scale_head_ptr + (page * stride_sp + slot), mask=load_mask, other=0.0)
    return tl.load(scale_head_ptr + (page * stride_sp + slot))


@triton.jit
def _tile_kv(
    k_ptrs,
    v_ptrs,
    k_scale_head_ptr,
    v_scale_head_ptr,
    page,
    slot,
    stride_sp,
    load_mask,
    MASKED: tl.constexpr,
    FP8: tl.constexpr,
):
    """One tile's K, V [BLOCK_N, HEAD_DIM] in the cache's dtype and, with FP8, their per-token scales
    [BLOCK_N] (1.0 placeholders, never used, without): into registers for _update_with_tile."""
    k = _load_tile(k_ptrs, load_mask, MASKED)
    v = _load_tile(v_ptrs, load_mask, MASKED)
    k_scales = 1.0
    v_scales = 1.0
    if FP8:
        k_scales = _load_scales(k_scale_head_ptr, page, slot, stride_sp, load_mask, MASKED)
        v_scales = _load_scales(v_scale_head_ptr, page, slot, stride_sp, load_mask, MASKED)
    return k, v, k_scales, v_scales


@triton.jit
def _tile_scores(q, k, qk_scale, FP8: tl.constexpr):
    """q K^T * qk_scale [M, BLOCK_N] in float32, before K's FP8 scales."""
    # "ieee" only matters for float32 inputs (exact instead of tf32); 16-bit dots ignore it.
    if FP8 and q.dtype != tl.float32:  # e4m3 widens to float16 in one instruction a pair, bf16 not
        return tl.dot(q.to(tl.float16), tl.trans(k.to(tl.float16))) * qk_scale
    else:  # float32 q keeps an exact product (the CPU interpreter's tests compare at 1e-4)
        return tl.dot(q, tl.trans(k.to(q.dtype)), input_precision="ieee") * qk_scale


@triton.jit
def _softmax_step(
    s,
    k_scales,
    l_i,
    m_i,
    q_pos,
    tok,
    in_range,
    MASK_BOUNDS: tl.constexpr,
    CAUSAL: tl.constexpr,
    FP8: tl.constexpr,
):
    """The tile's probabilities p (against the new running max m_new), the factor alpha that rescales what
    came before, and the new (l_i, m_new)."""
    if FP8:
        s = s * k_scales[None, :]
    if CAUSAL:
        s = tl.where((tok[None, :] <= q_pos[:, None]) & in_range[None, :], s, float("-inf"))
    elif MASK_BOUNDS:
        s = tl.where(in_range[None, :], s, float("-inf"))

    # Every tile holds a token visible to every row that reaches it, or every row saw token 0 in an
    # earlier tile, so m_new is finite and exp2 never sees (-inf) - (-inf).
    m_new = tl.maximum(m_i, tl.max(s, 1))
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new[:, None])
    l_i = l_i * alpha + tl.sum(p, 1)
    return p, alpha, l_i, m_new


@triton.jit
def _add_pv(acc, alpha, p, v, v_scales, q_dtype: tl.constexpr, FP8: tl.constexpr):
    """acc * alpha + p V."""
    if FP8 and q_dtype != tl.float32:
        # p * scale lifted by 2**8 so that small products stay out of float16's subnormals
        pv = tl.dot((p * (v_scales * 256.0)[None, :]).to(tl.float16), v.to(tl.float16)) * (1.0 / 256.0)
    elif FP8:
        pv = tl.dot((p * v_scales[None, :]).to(q_dtype), v.to(q_dtype), input_precision="ieee")
    else:
        pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
    return acc * alpha[:, None] + pv


@triton.jit
def _update_with_tile(
    acc,
    l_i,
    m_i,
    q,
    q_pos,
    tok,
    in_range,
    k,
    v,
    k_scales,
    v_scales,
    qk_scale,
    MASK_BOUNDS: tl.constexpr,
    CAUSAL: tl.constexpr,
    FP8: tl.constexpr,
):
    """Online-softmax update of (acc, l_i, m_i) with one tile already in registers (_tile_kv): what one
    iteration of _attend_kv_tiles computes, and under the same condition on the tile."""
    s = _tile_scores(q, k, qk_scale, FP8)
    p, alpha, l_i, m_i = _softmax_step(s, k_scales, l_i, m_i, q_pos, tok, in_range, MASK_BOUNDS, CAUSAL, FP8)
    return _add_pv(acc, alpha, p, v, v_scales, q.dtype, FP8), l_i, m_i


@triton.jit
def _attend_kv_tiles(
    acc,
    l_i,
    m_i,
    q,
    q_pos,
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
    MASK_BOUNDS: tl.constexpr,
    CAUSAL: tl.constexpr,
    FP8: tl.constexpr,
    stride_vd=1,
    V_DIM_MAJOR: tl.constexpr = False,
):
    """Online-softmax update of (acc, l_i, m_i) with KV tokens [tok_start, tok_end).

    q is [M, HEAD_DIM]; q_pos [M] holds each query row's KV position (used only when CAUSAL).
    tok_start must be a multiple of BLOCK_N. Without MASK_BOUNDS, tok_end must be one too.

    With FP8 the pages hold float8 e4m3 and each token's scale lies at page * stride_sp + slot from the
    head's scale pointers. The tiles are widened (exactly) and dequantized in registers by folding the
    scales into what multiplies them: K's into its column of scores, V's into its column of
    probabilities (BLOCK_N multiplies per row instead of BLOCK_N * HEAD_DIM). The softmax sums use the
    unscaled probabilities. With 16-bit q the dots run in float16, since e4m3 widens to float16 in one
    instruction a pair and to bfloat16 only through float32 (on an H100 the decode read 68 -> 85% of
    the copy bandwidth at batch 64, allmos.microbench.kernel_bench_fp8); float32 q keeps float32 dots.

    The loop runs _update_with_tile's steps with the loads in between (K, its dot, the scales, the
    softmax, then V): loading the whole tile first (_tile_kv) compiled to other code, e.g. 147 -> 204
    registers for the FP8 decode kernel on sm_90.
    """
    for tile_start in range(tok_start, tok_end, BLOCK_N):
        tok, in_range, page, slot, k_ptrs, v_ptrs = _tile_pointers(
            bt_row_ptr, tile_start, tok_end, k_head_ptr, v_head_ptr, stride_kp, stride_kt, stride_vp, stride_vt,
            HEAD_DIM, BLOCK_SIZE, BLOCK_N, stride_vd, V_DIM_MAJOR,
        )  # fmt: skip
        k = _load_tile(k_ptrs, in_range, MASK_BOUNDS)
        s = _tile_scores(q, k, qk_scale, FP8)
        k_scales = 1.0
        v_scales = 1.0
        if FP8:
            k_scales = _load_scales(k_scale_head_ptr, page, slot, stride_sp, in_range, MASK_BOUNDS)
            v_scales = _load_scales(v_scale_head_ptr, page, slot, stride_sp, in_range, MASK_BOUNDS)
        p, alpha, l_i, m_i = _softmax_step(s, k_scales, l_i, m_i, q_pos, tok, in_range, MASK_BOUNDS, CAUSAL, FP8)
        v = _load_v_tile(v_ptrs, in_range, MASK_BOUNDS, V_DIM_MAJOR)
        acc = _add_pv(acc, alpha, p, v, v_scales, q.dtype, FP8)
    return acc, l_i, m_i


# ---------------------------------------------------------------------------------------------------------
# Host wrappers
# ---------------------------------------------------------------------------------------------------------


def v_dim_major(v_cache: torch.Tensor) -> bool:
    """Whether v_cache [num_blocks, block_size, H, D] is a view of pages stored [num_blocks, H, D, block_size]
    (token stride 1), which the kernels read in whole tiles (see _load_v_tile)."""
    return v_cache.stride(-1) != 1 and v_cache.stride(1) == 1


def _check_cache(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, scales=None) -> tuple[int, int, int]:
    """Validate shapes shared by both kernels; return (block_size, num_kv_heads, group)."""
    if k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise ValueError(
            f"caches must both be [num_blocks, block_size, H, D]; got {tuple(k_cache.shape)}, {tuple(v_cache.shape)}"
        )
    _, block_size, num_kv_heads, head_dim = k_cache.shape
    num_heads = q.shape[1]
    if q.dim() != 3 or q.shape[2] != head_dim:
        raise ValueError(f"q must be [tokens, num_heads, head_dim={head_dim}]; got {tuple(q.shape)}")
    if head_dim < 16 or head_dim & (head_dim - 1):
        raise ValueError(f"head_dim must be a power of two >= 16; got {head_dim}")
    if block_size & (block_size - 1):
        raise ValueError(f"block_size must be a power of two; got {block_size}")
    if num_heads % num_kv_heads:
        raise ValueError(f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}")
    if q.stride(-1) != 1 or k_cache.stride(-1) != 1:
        raise ValueError("q and k_cache need a unit stride in head_dim")
    if v_cache.stride(-1) != 1 and not v_dim_major(v_cache):
        raise ValueError("v_cache needs a unit stride in head_dim or in block_size (pages stored dim-major)")
    if k_cache.dtype != v_cache.dtype:
        raise ValueError(f"k_cache and v_cache must share a dtype; got {k_cache.dtype}, {v_cache.dtype}")
    check_scale_pages(k_cache, scales)
    return block_size, num_kv_heads, num_heads // num_kv_heads


def _fp8_args(scales, placeholder: torch.Tensor) -> tuple:
    """(k scales, v scales, page stride, head stride) of the scales beside fp8 pages (KVScales), or
    placeholders never read (FP8=False)."""
    if scales is None:
        return placeholder, placeholder, 0, 0
    return scales.k, scales.v, scales.k.stride(0), scales.k.stride(1)


def _check_index_tensors(**tensors: torch.Tensor) -> None:
    for name, tensor in tensors.items():
        if tensor.stride(-1) != 1:
            raise ValueError(f"{name} needs a unit stride in its last dimension")


def _output_like(q: torch.Tensor, out: torch.Tensor | None) -> torch.Tensor:
    if out is None:
        return torch.empty(q.shape, dtype=q.dtype, device=q.device)
    if out.shape != q.shape or out.stride(-1) != 1:
        raise ValueError(f"out must have q's shape {tuple(q.shape)} and a unit last stride")
    return out
