"""Merging the splits of paged decode attention (decode.py): each split's partial output and
log-sum-exp are combined either by the last split to finish (per-(sequence, kv head) counters that
reset themselves, so CUDA graphs can replay them) or by a second kernel."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_MERGE_TILE_ELEMENTS = 8192


@triton.jit
def _splits_with_tokens(ctx_len, num_splits, BLOCK_N: tl.constexpr):
    """How many leading splits hold tokens (splits 0..n-1; the rest are empty); 1 when ctx_len == 0, so
    that split 0 still writes the (zero) output."""
    num_tiles = tl.cdiv(ctx_len, BLOCK_N)
    tiles_per_split = tl.maximum(tl.cdiv(num_tiles, num_splits), 1)
    return tl.maximum(tl.cdiv(num_tiles, tiles_per_split), 1)


@triton.jit
def _store_or_merge_fused(
    o,
    lse,
    out_ptrs,
    rows,
    head_mask,
    partial_out_ptr,
    partial_lse_ptr,
    counter_ptr,
    group_out_ptr,
    group_first_row,
    split,
    used_splits,
    num_splits,
    stride_oh,
    GROUP: tl.constexpr,
    HEADS_PER_MERGE: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
):
    """Last program reduces: each split that holds tokens publishes its partial and counts itself in
    the (sequence, kv head) counter; the one that completes the count merges all partials into out and
    sets the counter back to 0, ready for the next launch (no memset, so CUDA-graph replays just work).

    Empty splits (split >= used_splits) neither write nor count: every program of the group derives
    used_splits from the same ctx_len, so exactly used_splits increments reach the counter. A single
    split with tokens writes out directly.

    Ordering: Triton lowers a scalar atomic to one thread of the program, so tl.debug_barrier() first
    makes every thread's partial stores happen-before that thread's release (bar.sync orders the CTA's
    memory accesses; a gpu-scope release is cumulative over them). The acquire pairs with the other
    splits' releases, and the barrier after it extends that to all threads of the merging program.
    Nothing of this launch touches the counter after the last arrival, so a plain store resets it;
    the next launch (or graph replay) is ordered after this one by the stream.
    """
    offs_d = tl.arange(0, HEAD_DIM)
    if used_splits == 1:
        if split == 0:
            tl.store(out_ptrs, o.to(out_ptrs.dtype.element_ty), mask=head_mask[:, None])
    elif split < used_splits:
        tl.store(partial_lse_ptr + rows, lse, mask=head_mask)
        tl.store(partial_out_ptr + rows[:, None] * HEAD_DIM + offs_d[None, :], o, mask=head_mask[:, None])
        tl.debug_barrier()
        arrived_before = tl.atomic_add(counter_ptr, 1, sem="acq_rel", scope="gpu")
        if arrived_before == used_splits - 1:
            tl.debug_barrier()
            for first_head in tl.static_range(0, GROUP, HEADS_PER_MERGE):
                _merge_partials(
                    partial_out_ptr,
                    partial_lse_ptr,
                    group_out_ptr + first_head * stride_oh,
                    group_first_row + first_head * num_splits,
                    GROUP - first_head,
                    used_splits,
                    num_splits,
                    stride_oh,
                    HEADS_PER_MERGE,
                    SPLITS_PAD,
                    HEAD_DIM,
                )
            tl.store(counter_ptr, 0)


@triton.jit
def _merge_partials(
    partial_out_ptr,
    partial_lse_ptr,
    out_ptr,
    first_row,
    heads_left,
    used_splits,
    num_splits,
    stride_oh,
    HEADS: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
):
    """out[h] = lse-weighted mean of the first used_splits partials of heads h < min(HEADS, heads_left),
    whose partial rows start at first_row + h * num_splits. All loads are issued together (one round
    trip); ".cg" reads them from L2, where the other programs' stores went."""
    offs_h = tl.arange(0, HEADS)
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    rows = first_row + offs_h[:, None] * num_splits + offs_s[None, :]
    valid = (offs_h[:, None] < heads_left) & (offs_s[None, :] < used_splits)

    lse = tl.load(partial_lse_ptr + rows, mask=valid, other=float("-inf"), cache_modifier=".cg")
    o = tl.load(
        partial_out_ptr + rows[:, :, None] * HEAD_DIM + offs_d[None, None, :],
        mask=valid[:, :, None],
        other=0.0,
        cache_modifier=".cg",
    )
    lse_max = tl.max(lse, 1)
    lse_max = tl.where(lse_max == float("-inf"), 0.0, lse_max)  # masked-off head rows
    weights = tl.exp2(lse - lse_max[:, None])
    weight_sum = tl.sum(weights, 1)
    o = tl.sum(o * weights[:, :, None], 1) / tl.where(weight_sum > 0, weight_sum, 1.0)[:, None]
    out_ptrs = out_ptr + offs_h[:, None] * stride_oh + offs_d[None, :]
    tl.store(out_ptrs, o.to(out_ptr.dtype.element_ty), mask=(offs_h < heads_left)[:, None])


@triton.jit
def _decode_combine_kernel(
    partial_out_ptr,
    partial_lse_ptr,
    out_ptr,
    num_splits,
    stride_ob,
    stride_oh,
    HEAD_DIM: tl.constexpr,
    SPLITS_PAD: tl.constexpr,
):
    """One program = one (sequence, query head): merges the splits' normalized outputs by their lse."""
    batch_idx = tl.program_id(0)
    head = tl.program_id(1)
    offs_s = tl.arange(0, SPLITS_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    split_mask = offs_s < num_splits
    rows = (batch_idx * tl.num_programs(1) + head) * num_splits + offs_s

    lse = tl.load(partial_lse_ptr + rows, mask=split_mask, other=float("-inf"))
    lse_max = tl.max(lse, 0)
    lse_max = tl.where(lse_max == float("-inf"), 0.0, lse_max)  # context_len == 0: all splits empty
    weights = tl.exp2(lse - lse_max)
    weight_sum = tl.sum(weights, 0)
    o = tl.load(partial_out_ptr + rows[:, None] * HEAD_DIM + offs_d[None, :], mask=split_mask[:, None], other=0.0)
    o = tl.sum(o * weights[:, None], 0) / tl.where(weight_sum > 0, weight_sum, 1.0)
    tl.store(out_ptr + batch_idx * stride_ob + head * stride_oh + offs_d, o.to(out_ptr.dtype.element_ty))


def decode_counters(batch: int, num_kv_heads: int, device: torch.device | str) -> torch.Tensor:
    """A zeroed counters buffer for the fused combine of paged_decode_attention: one int32 per
    (sequence, kv head). Each call leaves it zeroed again, so one buffer serves every later call
    (and every CUDA-graph replay) of up to `batch` sequences, but never two launches running at once."""
    return torch.zeros(batch * num_kv_heads, dtype=torch.int32, device=device)


def _check_counters(counters: torch.Tensor, batch: int, num_kv_heads: int, device: torch.device) -> None:
    needed = batch * num_kv_heads
    if counters.dtype != torch.int32 or counters.device != device:
        raise ValueError(f"counters must be int32 on {device}; got {counters.dtype} on {counters.device}")
    if not counters.is_contiguous() or counters.numel() < needed:
        raise ValueError(
            f"counters must be contiguous with >= batch * num_kv_heads = {needed} elements; "
            f"got shape {tuple(counters.shape)}"
        )


def _heads_per_merge(group: int, splits_pad: int, head_dim: int) -> int:
    """Query heads the fused merge reads in one pass: all of the group's partials at once (one memory
    round trip) unless that tile would pass _MERGE_TILE_ELEMENTS (64 fp32 registers per thread)."""
    heads = triton.next_power_of_2(group)
    while heads > 1 and heads * splits_pad * head_dim > _MERGE_TILE_ELEMENTS:
        heads //= 2
    return heads
