"""Triton kernel: per-head RMSNorm of q and k (Qwen3's q_norm/k_norm, optional) fused with neox RoPE, in place.

One program per token covers all of its q heads and then all of its kv heads. Each head is held as two
[BLOCK_H, HEAD_DIM // 2] tiles, its first and second halves (BLOCK_H: the head count padded to a power of
two, masked), so the neox rotation pairs element d with d + HEAD_DIM // 2 without any shuffle, the RMS of a
head is the sum over both tiles, and the token's cos/sin row is loaded once for q and k.

The norm and the rotation themselves (and their numerics) are allmos.triton_shared.rope's, which the decode
attention kernel shares (attention.fuse_rope).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.kv_store.base import KVTarget
from allmos.kv_store.kernels.store import check_store_args
from allmos.triton_shared.fp8 import fp8_args, store_halves, store_rows
from allmos.triton_shared.pdl import wait_for_previous_kernel
from allmos.triton_shared.rope import check_rope_args as _check_args
from allmos.triton_shared.rope import load_norm_rope, rope_cos_sin
from allmos.triton_shared.support import pdl_launch


@triton.jit
def _norm_rope_heads(
    x_ptr,
    w_ptr,
    stride_head,
    cos,
    sin,
    eps,
    NUM_HEADS: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_H: tl.constexpr,
    HAS_NORM: tl.constexpr,
    cache_row_ptr,
    cache_ok,
    STORE: tl.constexpr,
    scale_row_ptr=None,
    scale_head_stride=0,
    fixed_scale=0.0,
    QUANT: tl.constexpr = False,
    DYNAMIC: tl.constexpr = False,
):
    """Normalize (if HAS_NORM) and rotate the NUM_HEADS heads of one token at x_ptr, in place; with STORE,
    also write them to the KV-cache row at cache_row_ptr (contiguous [NUM_HEADS, 2 * HALF]) if cache_ok;
    with QUANT as fp8, each head's scale at scale_row_ptr + head * scale_head_stride."""
    heads = tl.arange(0, BLOCK_H)[:, None]
    dims = tl.arange(0, HALF)[None, :]
    mask = heads < NUM_HEADS
    ptrs1 = x_ptr + heads * stride_head + dims
    ptrs2 = ptrs1 + HALF
    out1, out2 = load_norm_rope(ptrs1, mask, w_ptr, cos, sin, eps, HALF, HAS_NORM)
    tl.store(ptrs1, out1, mask=mask)
    tl.store(ptrs2, out2, mask=mask)
    if STORE:
        rows = tl.arange(0, BLOCK_H)
        cache_ptrs1 = cache_row_ptr + heads * (2 * HALF) + dims
        scale_ptrs = scale_row_ptr + rows * scale_head_stride
        row_mask = (rows < NUM_HEADS) & cache_ok
        store_halves(out1, out2, cache_ptrs1, scale_ptrs, mask & cache_ok, row_mask, fixed_scale, HALF, QUANT, DYNAMIC)


@triton.jit
def _copy_heads_to_cache(
    x_ptr,
    stride_head,
    cache_row_ptr,
    cache_ok,
    scale_row_ptr,
    scale_head_stride,
    fixed_scale,
    NUM_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    QUANT: tl.constexpr,
    DYNAMIC: tl.constexpr,
):
    rows = tl.arange(0, BLOCK_H)
    heads = rows[:, None]
    dims = tl.arange(0, HEAD_DIM)[None, :]
    mask = (heads < NUM_HEADS) & cache_ok
    x = tl.load(x_ptr + heads * stride_head + dims, mask=mask)
    scale_ptrs = scale_row_ptr + rows * scale_head_stride
    store_rows(
        x,
        cache_row_ptr + heads * HEAD_DIM + dims,
        scale_ptrs,
        mask,
        (rows < NUM_HEADS) & cache_ok,
        fixed_scale,
        QUANT,
        DYNAMIC,
    )


@triton.jit
def _qk_norm_rope_kernel(
    positions_ptr,
    q_ptr,
    k_ptr,
    q_weight_ptr,
    k_weight_ptr,
    cos_ptr,
    sin_ptr,
    stride_q_tok,
    stride_q_head,
    stride_k_tok,
    stride_k_head,
    eps,
    v_ptr,
    k_cache_ptr,
    v_cache_ptr,
    slot_mapping_ptr,
    stride_v_tok,
    stride_v_head,
    k_scale_ptr,
    v_scale_ptr,
    fixed_scale,
    block_size,
    NUM_HEADS: tl.constexpr,
    NUM_KV_HEADS: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_KV: tl.constexpr,
    HAS_NORM: tl.constexpr,
    STORE_KV: tl.constexpr,
    USE_PDL: tl.constexpr,
    QUANT: tl.constexpr,
    DYNAMIC: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    cos, sin = rope_cos_sin(cos_ptr, sin_ptr, tl.load(positions_ptr + token), HALF)
    # Positions are written before the forward's first kernel (a plain launch) and the cos/sin caches
    # never change, so they may be read before the wait; q, k, v and the KV cache only after it.
    wait_for_previous_kernel(USE_PDL)
    no_cache = token < 0  # false: the q heads are never stored
    _norm_rope_heads(
        q_ptr + token * stride_q_tok,
        q_weight_ptr,
        stride_q_head,
        cos,
        sin,
        eps,
        NUM_HEADS,
        HALF,
        BLOCK_H,
        HAS_NORM,
        q_ptr,
        no_cache,
        False,
    )
    if STORE_KV:
        slot = tl.load(slot_mapping_ptr + token).to(tl.int64)
    else:
        slot = token
    row = slot * (NUM_KV_HEADS * 2 * HALF)  # the caches are contiguous [blocks, block_size, H, D]
    cache_ok = slot >= 0  # slot -1: CUDA-graph padding, nothing to store
    # FP8 scales are head-major within a page: [blocks, H, block_size].
    scale_row = (slot // block_size) * (NUM_KV_HEADS * block_size) + slot % block_size
    _norm_rope_heads(
        k_ptr + token * stride_k_tok,
        k_weight_ptr,
        stride_k_head,
        cos,
        sin,
        eps,
        NUM_KV_HEADS,
        HALF,
        BLOCK_KV,
        HAS_NORM,
        k_cache_ptr + row,
        cache_ok,
        STORE_KV,
        k_scale_ptr + scale_row,
        block_size,
        fixed_scale,
        QUANT,
        DYNAMIC,
    )
    if STORE_KV:
        _copy_heads_to_cache(
            v_ptr + token * stride_v_tok,
            stride_v_head,
            v_cache_ptr + row,
            cache_ok,
            v_scale_ptr + scale_row,
            block_size,
            fixed_scale,
            NUM_KV_HEADS,
            2 * HALF,
            BLOCK_KV,
            QUANT,
            DYNAMIC,
        )


def kv_args(kv: KVTarget) -> tuple[tuple, dict]:
    """The kernel's store arguments (and its QUANT / DYNAMIC flags) for the target `kv`."""
    scale_args, flags = fp8_args(kv.scales, kv.v)
    store = (kv.v, kv.k_cache, kv.v_cache, kv.slot_mapping, kv.v.stride(0), kv.v.stride(1))
    return (*store, *scale_args, kv.k_cache.shape[1]), flags


def no_kv_args(k: torch.Tensor, positions: torch.Tensor) -> tuple[tuple, dict]:
    """Placeholders for the store arguments, never read without STORE_KV."""
    return (k, k, k, positions, 0, 0, k, k, 0.0, 1), {"QUANT": False, "DYNAMIC": False}


def qk_norm_rope_triton(
    positions: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    q_weight: torch.Tensor | None,
    k_weight: torch.Tensor | None,
    eps: float,
    cos_cache: torch.Tensor,
    sin_cache: torch.Tensor,
    kv: KVTarget | None = None,
    *,
    pdl: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """In place on q [tokens, heads, D] and k [tokens, kv_heads, D] (views with any row/head strides):
    `rms_norm` with q_weight / k_weight (skipped when both are None), then neox RoPE at `positions`.
    With `kv`, also writes the rotated k and kv.v into the paged caches at kv.slot_mapping (slot -1
    skipped), as allmos.kv_store's Triton store would (into fp8 caches quantized, with kv.scales).
    Returns (q, k). Positions must lie in [0, max_positions): they are not read on the host (no sync,
    so the launch can be captured in a CUDA graph), hence not checked. With pdl (sm_90+) the kernel is
    launched with programmatic dependent launch: it starts while the previous kernel runs and waits
    for it after reading the positions' cos/sin."""
    _check_args(positions, q, k, q_weight, k_weight, cos_cache, sin_cache)
    if kv is not None:
        check_store_args(k, kv.v, kv.k_cache, kv.v_cache, kv.slot_mapping, kv.scales)
    num_tokens, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    if num_tokens == 0:
        return q, k
    has_norm = q_weight is not None
    block_h = triton.next_power_of_2(num_heads)
    # About 8 elements per thread over the larger (q) tile: 16-byte accesses for 16-bit dtypes.
    num_warps = max(1, min(8, block_h * head_dim // 256))
    store_args, flags = kv_args(kv) if kv is not None else no_kv_args(k, positions)
    _qk_norm_rope_kernel[(num_tokens,)](
        positions,
        q,
        k,
        q_weight if has_norm else q,  # never read without HAS_NORM
        k_weight if has_norm else k,
        cos_cache,
        sin_cache,
        q.stride(0),
        q.stride(1),
        k.stride(0),
        k.stride(1),
        eps,
        *store_args,
        NUM_HEADS=num_heads,
        NUM_KV_HEADS=num_kv_heads,
        HALF=head_dim // 2,
        BLOCK_H=block_h,
        BLOCK_KV=triton.next_power_of_2(num_kv_heads),
        HAS_NORM=has_norm,
        STORE_KV=kv is not None,
        num_warps=num_warps,
        **flags,
        **pdl_launch("qk_norm_rope_triton", pdl, q.device),
    )
    return q, k
