"""Per-head q/k RMSNorm and neox RoPE in registers, shared by the rope kernel (allmos.rope.kernels.qk_rope)
and the decode attention kernel that does the same for a decode step itself (attention.fuse_rope), so both
compute and store the same bits; with the host-side checks of their arguments.

Each head is held as two [rows, HALF] tiles, its first and second halves, so the rotation pairs element d
with d + HALF without any shuffle. Numerics follow allmos.layers.ops (`rms_norm`, then `rope_qk`): the norm
is computed in float32 and rounded to the input dtype, multiplied by the weight and rounded again (as
`weight * x` in the input dtype does when the weight has that dtype), then rotated in float32 and rounded
once more.
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def rope_cos_sin(cos_ptr, sin_ptr, pos, HALF: tl.constexpr):
    """The cos/sin rows [1, HALF] of position `pos` (the caches are contiguous [max_positions, HALF] float32)."""
    pos = pos.to(tl.int64)
    cos = tl.load(cos_ptr + pos * HALF + tl.arange(0, HALF))[None, :]
    sin = tl.load(sin_ptr + pos * HALF + tl.arange(0, HALF))[None, :]
    return cos, sin


@triton.jit
def load_norm_rope(ptrs1, mask, w_ptr, cos, sin, eps, HALF: tl.constexpr, HAS_NORM: tl.constexpr):
    """Heads whose first halves lie at ptrs1 [rows, HALF] (the second halves HALF further; rows outside
    `mask` read as zeros): normalized with the weight at w_ptr (if HAS_NORM) and rotated by cos, sin
    [1, HALF]. Returns the two halves in the heads' dtype."""
    x1 = tl.load(ptrs1, mask=mask, other=0.0)
    x2 = tl.load(ptrs1 + HALF, mask=mask, other=0.0)
    return norm_rope(x1, x2, w_ptr, cos, sin, eps, HALF, HAS_NORM)


@triton.jit
def norm_rope(x1, x2, w_ptr, cos, sin, eps, HALF: tl.constexpr, HAS_NORM: tl.constexpr):
    """The halves x1, x2 [rows, HALF] of heads, in their dtype: normalized with the weight at w_ptr (if
    HAS_NORM) and rotated by cos, sin [1, HALF]. Returns the two halves in that dtype."""
    dims = tl.arange(0, HALF)[None, :]
    dtype = x1.dtype
    x1 = x1.to(tl.float32)
    x2 = x2.to(tl.float32)
    if HAS_NORM:
        mean_sq = (tl.sum(x1 * x1, 1) + tl.sum(x2 * x2, 1)) / (2 * HALF)
        rstd = tl.rsqrt(mean_sq + eps)[:, None]
        w1 = tl.load(w_ptr + dims).to(tl.float32)
        w2 = tl.load(w_ptr + HALF + dims).to(tl.float32)
        x1 = (w1 * (x1 * rstd).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
        x2 = (w2 * (x2 * rstd).to(dtype).to(tl.float32)).to(dtype).to(tl.float32)
    out1 = (x1 * cos - x2 * sin).to(dtype)
    out2 = (x2 * cos + x1 * sin).to(dtype)
    return out1, out2


def check_rope_args(positions, q, k, q_weight, k_weight, cos_cache, sin_cache) -> None:
    """q [tokens, heads, D] and k [tokens, kv_heads, D] with their positions [tokens], norm weights
    (both or neither) and float32 cos/sin caches [max_positions, D // 2]; ValueError naming what is wrong."""
    import torch

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
