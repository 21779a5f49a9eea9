"""Triton kernel: per-head RMSNorm of q and k (Qwen3's q_norm/k_norm, optional) fused with neox RoPE, in place.

One program per token covers all of its q heads and then all of its kv heads. Each head is held as two
[BLOCK_H, HEAD_DIM // 2] tiles, its first and second halves (BLOCK_H: the head count padded to a power of
two, masked), so the neox rotation pairs element d with d + HEAD_DIM // 2 without any shuffle, the RMS of a
head is the sum over both tiles, and the token's cos/sin row is loaded once for q and k.

Numerics follow allmos.layers.ops (`rms_norm`, then `rope_qk`): the norm is computed in float32 and rounded
to the input dtype, multiplied by the weight and rounded again (as `weight * x` in the input dtype does when
the weight has that dtype), then rotated in float32 and rounded once more on the store.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


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
):
    """Normalize (if HAS_NORM) and rotate the NUM_HEADS heads of one token at x_ptr, in place."""
    heads = tl.arange(0, BLOCK_H)[:, None]
    dims = tl.arange(0, HALF)[None, :]
    mask = heads < NUM_HEADS
    ptrs1 = x_ptr + heads * stride_head + dims
    ptrs2 = ptrs1 + HALF
    dtype = x_ptr.dtype.element_ty
    x1 = tl.load(ptrs1, mask=mask, other=0.0).to(tl.float32)
    x2 = tl.load(ptrs2, mask=mask, other=0.0).to(tl.float32)
    if HAS_NORM:
        mean_sq = (tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / (2 * HALF)
        rstd = tl.rsqrt(mean_sq + eps)[:, None]
        w1 = tl.load(w_ptr + dims).to(tl.float32)
        w2 = tl.load(w_ptr + HALF + dims).to(tl.float32)
        x1 = (w1 * (x1 * rstd).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
        x2 = (w2 * (x2 * rstd).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
    tl.store(ptrs1, (x1 * cos - x2 * sin).to(dtype), mask=mask)
    tl.store(ptrs2, (x2 * cos + x1 * sin).to(dtype), mask=mask)


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
    NUM_HEADS: tl.constexpr,
    NUM_KV_HEADS: tl.constexpr,
    HALF: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_KV: tl.constexpr,
    HAS_NORM: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    pos = tl.load(positions_ptr + token).to(tl.int64)
    # The caches are contiguous [max_positions, HALF] float32.
    cos = tl.load(cos_ptr + pos * HALF + tl.arange(0, HALF))[None, :]
    sin = tl.load(sin_ptr + pos * HALF + tl.arange(0, HALF))[None, :]
    _norm_rope_heads(
        q_ptr + token * stride_q_tok, q_weight_ptr, stride_q_head, cos, sin, eps, NUM_HEADS, HALF, BLOCK_H, HAS_NORM
    )
    _norm_rope_heads(
        k_ptr + token * stride_k_tok, k_weight_ptr, stride_k_head, cos, sin, eps, NUM_KV_HEADS, HALF, BLOCK_KV, HAS_NORM
    )


def _check_args(positions, q, k, q_weight, k_weight, cos_cache, sin_cache) -> None:
    if q.dim() != 3 or k.dim() != 3 or q.shape[0] != k.shape[0] or q.shape[2] != k.shape[2]:
        raise ValueError(
            f"q and k must be [tokens, heads, head_dim] with equal tokens and head_dim; "
            f"got {tuple(q.shape)}, {tuple(k.shape)}"
        )
    head_dim = q.shape[2]
    if head_dim < 2 or head_dim & (head_dim - 1):
        raise ValueError(f"head_dim must be a power of two (>= 2) for the Triton qk-norm/RoPE kernel; got {head_dim}")
    if q.dtype != k.dtype:
        raise ValueError(f"q and k must share a dtype; got {q.dtype}, {k.dtype}")
    if q.stride(-1) != 1 or k.stride(-1) != 1:
        raise ValueError("q and k must have a unit stride in head_dim")
    if positions.shape != (q.shape[0],) or positions.dtype not in (torch.int32, torch.int64):
        raise ValueError(
            f"positions must be int32/int64 [tokens={q.shape[0]}]; got {positions.dtype} {tuple(positions.shape)}"
        )
    for name, cache in (("cos_cache", cos_cache), ("sin_cache", sin_cache)):
        if cache.dim() != 2 or cache.shape[1] != head_dim // 2 or cache.dtype != torch.float32:
            raise ValueError(
                f"{name} must be float32 [max_positions, {head_dim // 2}]; got {cache.dtype} {tuple(cache.shape)}"
            )
        if not cache.is_contiguous():
            raise ValueError(f"{name} must be contiguous")
    if (q_weight is None) != (k_weight is None):
        raise ValueError("q_weight and k_weight must both be given (RMSNorm + RoPE) or both be None (RoPE only)")
    for name, weight in (("q_weight", q_weight), ("k_weight", k_weight)):
        if weight is not None and (weight.shape != (head_dim,) or not weight.is_contiguous()):
            raise ValueError(f"{name} must be a contiguous [head_dim={head_dim}]; got {tuple(weight.shape)}")


def qk_norm_rope_triton(
    positions: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    q_weight: torch.Tensor | None,
    k_weight: torch.Tensor | None,
    eps: float,
    cos_cache: torch.Tensor,
    sin_cache: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """In place on q [tokens, heads, D] and k [tokens, kv_heads, D] (views with any row/head strides):
    `rms_norm` with q_weight / k_weight (skipped when both are None), then neox RoPE at `positions`.
    Returns (q, k). Positions must lie in [0, max_positions): they are not read on the host (no sync, so
    the launch can be captured in a CUDA graph), hence not checked."""
    _check_args(positions, q, k, q_weight, k_weight, cos_cache, sin_cache)
    num_tokens, num_heads, head_dim = q.shape
    num_kv_heads = k.shape[1]
    if num_tokens == 0:
        return q, k
    has_norm = q_weight is not None
    block_h = triton.next_power_of_2(num_heads)
    # About 8 elements per thread over the larger (q) tile: 16-byte accesses for 16-bit dtypes.
    num_warps = max(1, min(8, block_h * head_dim // 256))
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
        NUM_HEADS=num_heads,
        NUM_KV_HEADS=num_kv_heads,
        HALF=head_dim // 2,
        BLOCK_H=block_h,
        BLOCK_KV=triton.next_power_of_2(num_kv_heads),
        HAS_NORM=has_norm,
        num_warps=num_warps,
    )
    return q, k
