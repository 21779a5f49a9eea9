"""Triton kernel: a one-token decode step's qkv projection with the rope plugin's work in its epilogue
(rope.fuse_qkv): y = rms_norm(x + residual) W^T (+ bias) as allmos.linear.kernels.gemv's
`add_rms_norm_linear` computes it, then, per head of the packed output [q heads | k heads | v heads], the
q/k RMSNorm and neox RoPE in place and the store of the new K and V into the paged cache, as the rope
kernel (allmos.rope.kernels.qk_rope) does: same functions, same bits. It saves the rope kernel's launch
and its wait for the projection, a few microseconds of a layer at batch 1.

A head's HEAD_DIM outputs come from HEAD_DIM // BLOCK_N programs. Each stores its outputs and counts itself
in the head's counter; the one that completes the count reads the whole head back and finishes it, then
sets the counter to 0 for the next launch (no memset, so CUDA-graph replays just work). The ordering is
the fused decode merge's (allmos.attention.kernels.decode_merge): a barrier before the release so every
thread's stores precede it, an acquire-release atomic, a barrier after it, and ".cg" loads from L2, where
the other programs' stores went.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.kv_store.kernels.store import check_store_args
from allmos.linear.kernels.gemv_checks import check_like, check_rows, check_weight
from allmos.linear.kernels.gemv_config import launch_config
from allmos.linear.kernels.gemv_kernel import _tile_offsets, norm_product
from allmos.rope.base import QKVRope
from allmos.triton_shared.fp8 import fp8_args, store_halves
from allmos.triton_shared.rope import check_rope_args, norm_rope, rope_cos_sin
from allmos.triton_shared.support import pdl_launch


@triton.jit
def _store_head_in_cache(
    h1, h2, kv_head, slot_mapping_ptr, cache_ptr, scale_ptr, fixed_scale, block_size, NUM_KV_HEADS: tl.constexpr,
    HALF: tl.constexpr, QUANT: tl.constexpr, DYNAMIC: tl.constexpr,
):  # fmt: skip
    """One head's halves [1, HALF] into its row of the cache [blocks, block_size, kv_heads, 2 * HALF] at the
    token's slot (nothing at slot -1: CUDA-graph padding); FP8 scales are head-major within a page."""
    dims = tl.arange(0, HALF)[None, :]
    one = tl.arange(0, 1)
    slot = tl.load(slot_mapping_ptr).to(tl.int64)
    cache_ok = slot >= 0
    cache_ptrs1 = cache_ptr + slot * (NUM_KV_HEADS * 2 * HALF) + kv_head * (2 * HALF) + dims
    scale_ptrs = scale_ptr + (slot // block_size) * (NUM_KV_HEADS * block_size) + kv_head * block_size
    scale_ptrs += slot % block_size + one
    mask = (dims < HALF) & cache_ok
    store_halves(h1, h2, cache_ptrs1, scale_ptrs, mask, (one < 1) & cache_ok, fixed_scale, HALF, QUANT, DYNAMIC)


@triton.jit
def _finish_head(
    y_ptr, head, positions_ptr, q_norm_ptr, k_norm_ptr, norm_eps, cos_ptr, sin_ptr, k_cache_ptr, v_cache_ptr,
    slot_mapping_ptr, k_scale_ptr, v_scale_ptr, fixed_scale, block_size, NUM_HEADS: tl.constexpr,
    NUM_KV_HEADS: tl.constexpr, HALF: tl.constexpr, HAS_NORM: tl.constexpr, STORE_KV: tl.constexpr,
    QUANT: tl.constexpr, DYNAMIC: tl.constexpr,
):  # fmt: skip
    """The rope kernel's work on one head of the output row: a q head is normalized and rotated in place;
    a k head also stored in the K cache (STORE_KV); a v head only stored in the V cache (STORE_KV)."""
    ptrs1 = y_ptr + head * (2 * HALF) + tl.arange(0, HALF)[None, :]
    h1 = tl.load(ptrs1, cache_modifier=".cg")
    h2 = tl.load(ptrs1 + HALF, cache_modifier=".cg")
    if head < NUM_HEADS + NUM_KV_HEADS:
        cos, sin = rope_cos_sin(cos_ptr, sin_ptr, tl.load(positions_ptr), HALF)
        if head < NUM_HEADS:
            h1, h2 = norm_rope(h1, h2, q_norm_ptr, cos, sin, norm_eps, HALF, HAS_NORM)
        else:
            h1, h2 = norm_rope(h1, h2, k_norm_ptr, cos, sin, norm_eps, HALF, HAS_NORM)
        tl.store(ptrs1, h1)
        tl.store(ptrs1 + HALF, h2)
        if STORE_KV:  # noqa: SIM102 (a constexpr and a run-time condition: nested for the Triton compiler)
            if head >= NUM_HEADS:
                kv_head = head - NUM_HEADS
                _store_head_in_cache(h1, h2, kv_head, slot_mapping_ptr, k_cache_ptr, k_scale_ptr, fixed_scale,
                                     block_size, NUM_KV_HEADS, HALF, QUANT, DYNAMIC)  # fmt: skip
    elif STORE_KV:
        kv_head = head - NUM_HEADS - NUM_KV_HEADS
        _store_head_in_cache(h1, h2, kv_head, slot_mapping_ptr, v_cache_ptr, v_scale_ptr, fixed_scale, block_size,
                             NUM_KV_HEADS, HALF, QUANT, DYNAMIC)  # fmt: skip


@triton.jit
def _add_rms_norm_qkv_rope_kernel(
    x_ptr, r_ptr, norm_w_ptr, w_ptr, bias_ptr, y_ptr, new_r_ptr, counters_ptr, N, eps, stride_xm, stride_rm,
    stride_new_rm, stride_wn, positions_ptr, q_norm_ptr, k_norm_ptr, norm_eps, cos_ptr, sin_ptr, k_cache_ptr,
    v_cache_ptr, slot_mapping_ptr, k_scale_ptr, v_scale_ptr, fixed_scale, block_size, K: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr, HAS_BIAS: tl.constexpr, NUM_HEADS: tl.constexpr, NUM_KV_HEADS: tl.constexpr,
    HALF: tl.constexpr, HAS_NORM: tl.constexpr, STORE_KV: tl.constexpr, QUANT: tl.constexpr,
    DYNAMIC: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):  # fmt: skip
    dtype = x_ptr.dtype.element_ty
    offs_m, m_mask, offs_n, n_mask = _tile_offsets(1, N, BLOCK_M, BLOCK_N)
    acc = norm_product(
        x_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, 1, N, eps, stride_xm, stride_rm, stride_new_rm, stride_wn,
        offs_m, m_mask, offs_n, n_mask, K, HAS_RESIDUAL, BLOCK_M, BLOCK_N, BLOCK_K, USE_PDL,
    )  # fmt: skip
    y = tl.sum(acc, axis=1).to(dtype)  # one row: the tile is [BLOCK_N, BLOCK_K]
    if HAS_BIAS:  # as the projection's `finish` adds it: to the rounded product, rounded again
        y = (y.to(tl.float32) + tl.load(bias_ptr + offs_n).to(tl.float32)).to(dtype)
    tl.store(y_ptr + offs_n, y)
    head = tl.program_id(0) // (2 * HALF // BLOCK_N)
    tl.debug_barrier()
    arrived_before = tl.atomic_add(counters_ptr + head, 1, sem="acq_rel", scope="gpu")
    if arrived_before == 2 * HALF // BLOCK_N - 1:
        tl.debug_barrier()
        _finish_head(
            y_ptr, head, positions_ptr, q_norm_ptr, k_norm_ptr, norm_eps, cos_ptr, sin_ptr, k_cache_ptr,
            v_cache_ptr, slot_mapping_ptr, k_scale_ptr, v_scale_ptr, fixed_scale, block_size, NUM_HEADS,
            NUM_KV_HEADS, HALF, HAS_NORM, STORE_KV, QUANT, DYNAMIC,
        )  # fmt: skip
        tl.store(counters_ptr + head, 0)


def rope_counters(num_heads: int, device: torch.device | str) -> torch.Tensor:
    """Zeroed per-head counters for add_rms_norm_qkv_rope: one int32 per head of the packed output. Each
    launch leaves them zeroed, so one buffer serves every later launch (and graph replay) with as many
    heads or fewer, but never two launches running at once."""
    return torch.zeros(num_heads, dtype=torch.int32, device=device)


def _check_rope(name: str, rope: QKVRope, y_width: int, head_dim: int, block_n: int, counters) -> None:
    heads = rope.num_heads + 2 * rope.num_kv_heads
    if heads * head_dim != y_width:
        raise ValueError(
            f"{name}: the weight's {y_width} outputs are not ({rope.num_heads} + 2 x {rope.num_kv_heads}) heads "
            f"of {head_dim}"
        )
    if head_dim % block_n:
        raise ValueError(f"{name}: block_n={block_n} does not divide head_dim={head_dim}")
    if counters.dtype != torch.int32 or counters.dim() != 1 or counters.numel() < heads:
        raise ValueError(f"{name}: counters must be int32 [>= {heads}], got {counters.dtype} {tuple(counters.shape)}")


def _rope_args(rope: QKVRope, y: torch.Tensor, head_dim: int) -> tuple[tuple, dict]:
    """The kernel's rope and store arguments, and its HAS_NORM / STORE_KV / QUANT / DYNAMIC flags."""
    heads = y.view(1, -1, head_dim)
    q_view, k_view = heads[:, : rope.num_heads], heads[:, rope.num_heads : rope.num_heads + rope.num_kv_heads]
    q_w = None if rope.q_norm is None else rope.q_norm.weight
    k_w = None if rope.k_norm is None else rope.k_norm.weight
    check_rope_args(rope.positions, q_view, k_view, q_w, k_w, rope.rotary.cos, rope.rotary.sin)
    eps = 0.0 if rope.q_norm is None else float(rope.q_norm.eps)
    norm = (y, y, eps) if q_w is None else (q_w, k_w, eps)  # never read without HAS_NORM
    flags = {"HAS_NORM": q_w is not None, "STORE_KV": rope.kv is not None}
    if rope.kv is None:  # placeholders, never read without STORE_KV
        scale_args, fp8_flags = fp8_args(None, y)
        pages = (y, y, rope.positions, *scale_args, 1)
    else:
        kv = rope.kv
        check_store_args(k_view, k_view, kv.k_cache, kv.v_cache, kv.slot_mapping, kv.scales)
        scale_args, fp8_flags = fp8_args(kv.scales, y)
        pages = (kv.k_cache, kv.v_cache, kv.slot_mapping, *scale_args, kv.k_cache.shape[1])
    return (rope.positions, *norm, rope.rotary.cos, rope.rotary.sin, *pages), flags | fp8_flags


def add_rms_norm_qkv_rope(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    norm_weight: torch.Tensor,
    eps: float,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    rope: QKVRope,
    counters: torch.Tensor,
    *,
    block_n: int | None = None,
    block_k: int | None = None,
    num_warps: int | None = None,
    pdl: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(qkv, x + residual) for one token: qkv = ops.add_rms_norm(x, residual, norm_weight, eps) @ weight^T
    (+ bias), with its q and k heads normalized (rope.q_norm / k_norm) and rotated at rope.positions, and
    with rope.kv the rotated K and the V written into the paged cache, as the rope plugin's kernel would.

    x, residual [1, K], norm_weight [K], weight [(heads + 2 kv_heads) x head_dim, K], bias None or like a
    row of the output, all of x's dtype; counters from rope_counters(heads + 2 kv_heads). The residual is as
    add_rms_norm_linear returns it.
    """
    name = "add_rms_norm_qkv_rope"
    check_weight(name, x, weight)
    n, k = weight.shape
    check_rows(name, "x", x, k, max_rows=1)
    check_like(name, "norm_weight", norm_weight, (k,), x)
    if residual is not None:
        check_like(name, "residual", residual, tuple(x.shape), x)
    if bias is not None:
        check_like(name, "bias", bias, (n,), x)
    head_dim = rope.rotary.cos.shape[1] * 2
    config = launch_config(name, 1, n, k, block_n, block_k, num_warps)
    _check_rope(name, rope, n, head_dim, config["BLOCK_N"], counters)
    y = torch.empty(1, n, dtype=x.dtype, device=x.device)
    new_residual = x if residual is None else torch.empty_like(x)
    residual_in = x if residual is None else residual  # a valid pointer the kernel never reads
    rope_args, flags = _rope_args(rope, y, head_dim)
    _add_rms_norm_qkv_rope_kernel[config["grid"]](
        x, residual_in, norm_weight, weight, y if bias is None else bias, y, new_residual, counters, n, float(eps),
        x.stride(0), residual_in.stride(0), new_residual.stride(0), weight.stride(0), *rope_args,
        K=k, HAS_RESIDUAL=residual is not None, HAS_BIAS=bias is not None, NUM_HEADS=rope.num_heads,
        NUM_KV_HEADS=rope.num_kv_heads, HALF=head_dim // 2, BLOCK_M=1, BLOCK_N=config["BLOCK_N"],
        BLOCK_K=config["BLOCK_K"], num_warps=config["num_warps"], **flags, **pdl_launch(name, pdl, x.device),
    )  # fmt: skip
    return y, new_residual
