"""Triton kernel that writes new K/V tokens into the paged KV cache."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.triton_shared.fp8 import check_scale_pages, fp8_args, store_rows


@triton.jit
def _store_kv_kernel(
    k_ptr,
    v_ptr,
    k_cache_ptr,
    v_cache_ptr,
    slot_mapping_ptr,
    k_scale_ptr,
    v_scale_ptr,
    fixed_scale,
    stride_k_tok,
    stride_k_head,
    stride_v_tok,
    stride_v_head,
    block_size,
    NUM_KV_HEADS: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_D: tl.constexpr,
    QUANT: tl.constexpr,
    DYNAMIC: tl.constexpr,
):
    token = tl.program_id(0).to(tl.int64)
    slot = tl.load(slot_mapping_ptr + token).to(tl.int64)
    heads = tl.arange(0, BLOCK_H)[:, None]
    dims = tl.arange(0, BLOCK_D)[None, :]
    # slot -1 marks CUDA-graph padding: masking both the load and the store skips it.
    mask = (heads < NUM_KV_HEADS) & (dims < HEAD_DIM) & (slot >= 0)
    # The cache is contiguous [num_blocks, block_size, H, D], so a slot is a flat row of H * D elements.
    cache_offs = slot * (NUM_KV_HEADS * HEAD_DIM) + heads * HEAD_DIM + dims
    # FP8 scales are head-major within a page: [blocks, H, block_size].
    row = tl.arange(0, BLOCK_H)
    scale_offs = (slot // block_size) * (NUM_KV_HEADS * block_size) + row * block_size + slot % block_size
    row_mask = (row < NUM_KV_HEADS) & (slot >= 0)

    k = tl.load(k_ptr + token * stride_k_tok + heads * stride_k_head + dims, mask=mask)
    store_rows(k, k_cache_ptr + cache_offs, k_scale_ptr + scale_offs, mask, row_mask, fixed_scale, QUANT, DYNAMIC)
    v = tl.load(v_ptr + token * stride_v_tok + heads * stride_v_head + dims, mask=mask)
    store_rows(v, v_cache_ptr + cache_offs, v_scale_ptr + scale_offs, mask, row_mask, fixed_scale, QUANT, DYNAMIC)


def check_store_args(k, v, k_cache, v_cache, slot_mapping, scales=None) -> None:
    if k.dim() != 3 or k.shape != v.shape:
        raise ValueError(f"k and v must both be [num_tokens, H, D]; got {tuple(k.shape)}, {tuple(v.shape)}")
    if k_cache.dim() != 4 or k_cache.shape != v_cache.shape:
        raise ValueError(
            f"caches must both be [num_blocks, block_size, H, D]; got {tuple(k_cache.shape)}, {tuple(v_cache.shape)}"
        )
    if k_cache.shape[2:] != k.shape[1:]:
        raise ValueError(f"cache heads/dim {tuple(k_cache.shape[2:])} != k heads/dim {tuple(k.shape[1:])}")
    if not (k_cache.is_contiguous() and v_cache.is_contiguous()):
        raise ValueError("k_cache and v_cache must be contiguous")
    if k.stride(-1) != 1 or v.stride(-1) != 1:
        raise ValueError("k and v must have a unit stride in their last dimension")
    if slot_mapping.dim() != 1 or slot_mapping.shape[0] != k.shape[0]:
        raise ValueError(f"slot_mapping must be [num_tokens={k.shape[0]}]; got {tuple(slot_mapping.shape)}")
    if slot_mapping.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"slot_mapping must be int32 or int64; got {slot_mapping.dtype}")
    check_scale_pages(k_cache, scales)


def store_kv_triton(
    k: torch.Tensor,
    v: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    slot_mapping: torch.Tensor,
    scales=None,
) -> None:
    """Write k/v [num_tokens, H, D] into the paged caches at `slot_mapping` (slot -1 is skipped); into
    fp8 caches quantized per (token, head) row, with the scales (a KVScales) written beside the pages."""
    check_store_args(k, v, k_cache, v_cache, slot_mapping, scales)
    num_tokens, num_kv_heads, head_dim = k.shape
    if num_tokens == 0:
        return
    block_h = triton.next_power_of_2(num_kv_heads)
    block_d = triton.next_power_of_2(head_dim)
    # About 8 elements per thread: 16-byte accesses for 16-bit dtypes.
    num_warps = max(1, min(8, block_h * block_d // 256))
    scale_args, flags = fp8_args(scales, k)
    _store_kv_kernel[(num_tokens,)](
        k,
        v,
        k_cache,
        v_cache,
        slot_mapping,
        *scale_args,
        k.stride(0),
        k.stride(1),
        v.stride(0),
        v.stride(1),
        k_cache.shape[1],
        NUM_KV_HEADS=num_kv_heads,
        HEAD_DIM=head_dim,
        BLOCK_H=block_h,
        BLOCK_D=block_d,
        num_warps=num_warps,
        **flags,
    )
