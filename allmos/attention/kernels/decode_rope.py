"""The decode kernel's own q/k norm, RoPE and store of the new token's K/V (FUSE_ROPE, attention.fuse_rope):
the work of the rope kernel (allmos.rope.kernels.qk_rope, storing K/V) done inside the decode attention, one
kernel per layer fewer.

Every program normalizes and rotates its GROUP q heads in registers (the same few loads in every split of a
sequence: cheaper than a launch). The split whose tokens end at the newest position (context_len - 1) also
normalizes and rotates that token's k, stores it and v at the token's slot (slot -1: CUDA-graph padding,
nothing stored), and attends to it from registers as one extra key, since the cache row is not written
when the program reads its tiles; the tiles (and the prefetched first tile) stop before it. No other
program reads that position, so the store races with no read. The norm and rotation are
allmos.triton_shared.rope's, which the rope kernel runs too: the row stored is the row it would store.
"""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
import triton
import triton.language as tl

from allmos.triton_shared.rope import check_rope_args, load_norm_rope


class DecodeRope(NamedTuple):
    """The new tokens' raw k, v and what rotates them, for paged_decode_attention's FUSE_ROPE."""

    k: torch.Tensor  # [batch, kv_heads, head_dim], before norm and rotation (a view of the qkv output)
    v: torch.Tensor  # [batch, kv_heads, head_dim]
    positions: torch.Tensor  # [batch] int32/int64: each new token's position
    slot_mapping: torch.Tensor  # [batch] int64: each new token's cache slot, -1 = do not store
    q_weight: Optional[torch.Tensor]  # the q/k RMSNorm weights [head_dim], both None without q/k norm
    k_weight: Optional[torch.Tensor]
    eps: float
    cos: torch.Tensor  # [max_positions, head_dim // 2] float32, contiguous
    sin: torch.Tensor


@triton.jit
def _join_halves(x1, x2, ROWS: tl.constexpr, HEAD_DIM: tl.constexpr):
    """Halves [ROWS, HEAD_DIM // 2] -> heads [ROWS, HEAD_DIM]."""
    return tl.reshape(tl.permute(tl.join(x1, x2), (0, 2, 1)), (ROWS, HEAD_DIM))


@triton.jit
def _rotated_q(
    q_row_ptr,
    q_heads,
    head_mask,
    stride_qh,
    w_ptr,
    cos,
    sin,
    eps,
    GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    HAS_NORM: tl.constexpr,
):
    """The program's q heads [GROUP_PAD, HEAD_DIM] normalized and rotated, in q's dtype (rows past the
    group: zeros)."""
    HALF: tl.constexpr = HEAD_DIM // 2
    ptrs1 = q_row_ptr + q_heads[:, None] * stride_qh + tl.arange(0, HALF)[None, :]
    q1, q2 = load_norm_rope(ptrs1, head_mask[:, None], w_ptr, cos, sin, eps, HALF, HAS_NORM)
    return _join_halves(q1, q2, GROUP_PAD, HEAD_DIM)


@triton.jit
def _attend_newest_token(
    acc,
    l_i,
    m_i,
    q,
    qk_scale,
    k_row_ptr,
    v_row_ptr,
    w_ptr,
    cos,
    sin,
    eps,
    k_cache_row_ptr,
    v_cache_row_ptr,
    store_ok,
    HEAD_DIM: tl.constexpr,
    HAS_NORM: tl.constexpr,
):
    """The newest token of one kv head: its k normalized and rotated, k and v stored at the cache rows (if
    store_ok), then the online-softmax update of (acc, l_i, m_i) with that one key, as a tile's update
    computes it (the probability rounded to v's dtype before it weighs v)."""
    HALF: tl.constexpr = HEAD_DIM // 2
    dims = tl.arange(0, HALF)[None, :]
    k1, k2 = load_norm_rope(k_row_ptr + dims, dims < HALF, w_ptr, cos, sin, eps, HALF, HAS_NORM)
    offs_d = tl.arange(0, HEAD_DIM)[None, :]
    v = tl.load(v_row_ptr + offs_d)
    cache_dtype = k_cache_row_ptr.dtype.element_ty
    tl.store(k_cache_row_ptr + dims, k1.to(cache_dtype), mask=store_ok)
    tl.store(k_cache_row_ptr + HALF + dims, k2.to(cache_dtype), mask=store_ok)
    tl.store(v_cache_row_ptr + offs_d, v.to(cache_dtype), mask=store_ok)

    k = _join_halves(k1, k2, 1, HEAD_DIM).to(tl.float32)  # in q's dtype, which the cache has
    s = tl.sum(q.to(tl.float32) * k, 1) * qk_scale
    m_new = tl.maximum(m_i, s)
    alpha = tl.exp2(m_i - m_new)
    p = tl.exp2(s - m_new)
    pv = p.to(v.dtype).to(tl.float32)[:, None] * v.to(tl.float32)
    return acc * alpha[:, None] + pv, l_i * alpha + p, m_new


def rope_args(rope: DecodeRope | None, q: torch.Tensor, k_cache: torch.Tensor) -> tuple[tuple, dict]:
    """The decode kernel's FUSE_ROPE arguments and constexprs; placeholders (never read) without `rope`."""
    if rope is None:
        return (q, q, q, q, q, q, q, q, 0.0, 0, 0, 0, 0), {"HAS_NORM": False, "FUSE_ROPE": False}
    _check(rope, q, k_cache)
    has_norm = rope.q_weight is not None
    weights = (rope.q_weight, rope.k_weight) if has_norm else (q, q)
    pointers = (rope.k, rope.v, rope.positions, rope.slot_mapping, *weights, rope.cos, rope.sin)
    strides = (rope.k.stride(0), rope.k.stride(1), rope.v.stride(0), rope.v.stride(1))
    return (*pointers, rope.eps, *strides), {"HAS_NORM": has_norm, "FUSE_ROPE": True}


def _check(rope: DecodeRope, q: torch.Tensor, k_cache: torch.Tensor) -> None:
    check_rope_args(rope.positions, q, rope.k, rope.q_weight, rope.k_weight, rope.cos, rope.sin)
    expected = (q.shape[0], *k_cache.shape[2:])
    for name, t in (("k", rope.k), ("v", rope.v)):
        if tuple(t.shape) != expected or t.dtype != q.dtype or t.stride(-1) != 1:
            raise ValueError(
                f"rope.{name} must be {q.dtype} {expected} with a unit last stride; got {t.dtype} {t.shape}"
            )
    if k_cache.dtype != q.dtype:
        raise ValueError(f"the fused rope stores into a cache of q's dtype {q.dtype}, not {k_cache.dtype}")
    if rope.slot_mapping.shape != (q.shape[0],) or rope.slot_mapping.stride(-1) != 1:
        raise ValueError(f"rope.slot_mapping must be [batch={q.shape[0]}]; got {tuple(rope.slot_mapping.shape)}")
