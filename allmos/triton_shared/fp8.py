"""FP8 (e4m3) K/V in Triton kernels: quantizing rows in registers (the KV store, the rope kernel that
stores K/V), with the same arithmetic as allmos.kv_store.fp8 (the torch path), so both write the same bytes;
and the host-side check of the scales beside fp8 pages (also for the attention kernels that read them)."""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def fp8_row_scales(amax, fixed, DYNAMIC: tl.constexpr):
    """Each row's scale from its largest |value| (DYNAMIC), or the one fixed scale."""
    if DYNAMIC:
        return tl.where(amax > 0, amax / 448.0, 1.0)
    return tl.zeros_like(amax) + fixed


@triton.jit
def round_to_e4m3(y):
    """float32 y (|y| <= 448) rounded to the nearest e4m3 value, ties to even, still in float32, so that
    the cast to fp8 is exact everywhere: the GPU's cast rounds the same way, but the Triton 3.6
    interpreter's rounds ties up and drops the carry into the exponent (31.0 -> 16.0, 124.0 -> 64.0)."""
    bits = y.to(tl.int32, bitcast=True)
    exponent = ((bits >> 23) & 0xFF) - 127
    quantum = ((tl.maximum(exponent, -6) - 3 + 127) << 23).to(tl.float32, bitcast=True)  # e4m3's ulp at y
    magic = quantum * 12582912.0  # 1.5 * 2**23 ulps: the float32 sum rounds y to a multiple of quantum
    rounded = (y + magic) - magic
    # y's sign back on what rounds to zero (-0.0001 -> -0, as the casts do)
    return (rounded.to(tl.int32, bitcast=True) | (bits & -2147483648)).to(tl.float32, bitcast=True)


@triton.jit
def fp8_scaled(x, scales):
    """float32 rows x [rows, cols] over their scales [rows], saturated to +-448 (e4m3 has no inf) and
    rounded to e4m3 values."""
    y = x / scales[:, None]
    return round_to_e4m3(tl.minimum(tl.maximum(y, -448.0), 448.0))


@triton.jit
def store_rows(x, cache_ptrs, scale_ptrs, mask, row_mask, fixed, QUANT: tl.constexpr, DYNAMIC: tl.constexpr):
    """Store rows x [rows, cols] at cache_ptrs (where mask); with QUANT as fp8, each row's scale at
    scale_ptrs [rows] (where row_mask)."""
    if QUANT:
        x = x.to(tl.float32)
        scales = fp8_row_scales(tl.max(tl.where(mask, tl.abs(x), 0.0), 1), fixed, DYNAMIC)
        tl.store(scale_ptrs, scales, mask=row_mask)
        x = fp8_scaled(x, scales)
    tl.store(cache_ptrs, x.to(cache_ptrs.dtype.element_ty), mask=mask)


@triton.jit
def store_halves(
    h1, h2, cache_ptrs1, scale_ptrs, mask, row_mask, fixed, HALF: tl.constexpr, QUANT: tl.constexpr,
    DYNAMIC: tl.constexpr,
):  # fmt: skip
    """Store rows held as their halves h1, h2 [rows, HALF] at cache_ptrs1 and HALF further (where mask);
    with QUANT as fp8, both halves of a row share its scale, stored at scale_ptrs [rows] (where row_mask)."""
    if QUANT:
        a1, a2 = h1.to(tl.float32), h2.to(tl.float32)
        amax = tl.maximum(tl.max(tl.where(mask, tl.abs(a1), 0.0), 1), tl.max(tl.where(mask, tl.abs(a2), 0.0), 1))
        scales = fp8_row_scales(amax, fixed, DYNAMIC)
        tl.store(scale_ptrs, scales, mask=row_mask)
        h1, h2 = fp8_scaled(a1, scales), fp8_scaled(a2, scales)
    tl.store(cache_ptrs1, h1.to(cache_ptrs1.dtype.element_ty), mask=mask)
    tl.store(cache_ptrs1 + HALF, h2.to(cache_ptrs1.dtype.element_ty), mask=mask)


def fp8_args(scales, placeholder) -> tuple:
    """The kernels' (k_scale, v_scale, fixed) arguments and their QUANT / DYNAMIC flags, from a
    KVScales (or None: the cache holds the model's dtype; the placeholder tensor is never read)."""
    if scales is None:
        return (placeholder, placeholder, 0.0), {"QUANT": False, "DYNAMIC": False}
    fixed = scales.fixed
    return (scales.k, scales.v, 0.0 if fixed is None else float(fixed)), {"QUANT": True, "DYNAMIC": fixed is None}


def check_scale_pages(cache, scales) -> None:
    """The scales beside fp8 pages [blocks, block_size, H, D]: float32 [blocks, H, block_size], contiguous."""
    import torch

    if cache.dtype != torch.float8_e4m3fn:
        if scales is not None:
            raise ValueError(f"scales were given for a {cache.dtype} cache; only fp8 caches have them")
        return
    if scales is None:
        raise ValueError("an fp8 cache needs its scales (KVScales)")
    blocks, block_size, heads, _ = cache.shape
    for name, s in (("k", scales.k), ("v", scales.v)):
        if s.shape != (blocks, heads, block_size) or s.dtype != torch.float32 or not s.is_contiguous():
            raise ValueError(
                f"{name} scales must be contiguous float32 [{blocks}, {heads}, {block_size}]; "
                f"got {s.dtype} {tuple(s.shape)}"
            )
