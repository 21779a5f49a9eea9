"""Triton attention kernels over a paged KV cache.

Cache layout: k_cache / v_cache are [num_blocks, block_size, num_kv_heads, head_dim] with a unit stride in
head_dim. `block_tables[b, i]` is the physical block holding tokens [i * block_size, (i + 1) * block_size)
of sequence b.

Both wrappers are CUDA-graph capturable: they read no tensor values on the host, and every shape they
allocate depends only on input shapes and host ints.

Scores are computed in the log2 domain (scale * log2(e) folded into one multiplier) so the softmax uses
exp2. Accumulation is float32; outputs are written in the dtype of `out` (q's dtype by default).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_LOG2E = 1.4426950408889634
_H100_NUM_SMS = 132
_MAX_SPLITS = 32
_MIN_TOKENS_PER_SPLIT = 64
# KV tokens per inner iteration. Tiles may span several pages (page looked up per token), so the tile is
# independent of block_size; 64 rows x 256 B (bf16, head_dim 128) keeps 16 KB of K in flight per program.
_DECODE_BLOCK_N = 64


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
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    MASK_BOUNDS: tl.constexpr,
    CAUSAL: tl.constexpr,
):
    """Online-softmax update of (acc, l_i, m_i) with KV tokens [tok_start, tok_end).

    q is [M, HEAD_DIM]; q_pos [M] holds each query row's KV position (used only when CAUSAL).
    tok_start must be a multiple of BLOCK_N. Without MASK_BOUNDS, tok_end must be one too.
    """
    offs_n = tl.arange(0, BLOCK_N)
    offs_d = tl.arange(0, HEAD_DIM)
    for tile_start in range(tok_start, tok_end, BLOCK_N):
        tok = tile_start + offs_n
        in_range = tok < tok_end
        page, slot = _tile_pages(bt_row_ptr, tile_start, offs_n, in_range, BLOCK_SIZE, BLOCK_N)
        k_ptrs = k_head_ptr + (page * stride_kp + slot * stride_kt)[:, None] + offs_d[None, :]
        v_ptrs = v_head_ptr + (page * stride_vp + slot * stride_vt)[:, None] + offs_d[None, :]
        if MASK_BOUNDS:
            k = tl.load(k_ptrs, mask=in_range[:, None], other=0.0)
        else:
            k = tl.load(k_ptrs)

        # "ieee" only matters for float32 inputs (exact instead of tf32); 16-bit dots ignore it.
        s = tl.dot(q, tl.trans(k.to(q.dtype)), input_precision="ieee") * qk_scale
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

        if MASK_BOUNDS:
            v = tl.load(v_ptrs, mask=in_range[:, None], other=0.0)
        else:
            v = tl.load(v_ptrs)
        acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision="ieee")
        m_i = m_new
    return acc, l_i, m_i


# ---------------------------------------------------------------------------------------------------------
# Decode: split-KV (flash-decoding)
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _decode_split_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    block_tables_ptr,
    context_lens_ptr,
    out_ptr,
    partial_out_ptr,
    partial_lse_ptr,
    qk_scale,
    num_splits,
    stride_qb,
    stride_qh,
    stride_kp,
    stride_kt,
    stride_kh,
    stride_vp,
    stride_vt,
    stride_vh,
    stride_btb,
    stride_ob,
    stride_oh,
    GROUP: tl.constexpr,
    GROUP_PAD: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    DIRECT_OUT: tl.constexpr,
):
    """One program = one (sequence, kv head, split). Its GROUP query heads share every K/V tile it loads.

    Why tl.dot with the group padded to GROUP_PAD >= 16 rows instead of a broadcast-multiply-sum: decode is
    bound by HBM bandwidth, and the tensor cores make the padded rows free; the broadcast form materializes
    GROUP x BLOCK_N x HEAD_DIM fp32 products in registers (64 KB per program for group 8, BLOCK_N 64,
    head_dim 128), which spills or forces tiny tiles, and tiny tiles leave too few bytes in flight.
    """
    batch_idx = tl.program_id(0)
    kv_head = tl.program_id(1)
    split = tl.program_id(2)

    ctx_len = tl.load(context_lens_ptr + batch_idx)
    num_tiles = tl.cdiv(ctx_len, BLOCK_N)
    tiles_per_split = tl.cdiv(num_tiles, num_splits)
    tok_start = split * tiles_per_split * BLOCK_N
    tok_end = tl.minimum(tok_start + tiles_per_split * BLOCK_N, ctx_len)

    offs_g = tl.arange(0, GROUP_PAD)
    offs_d = tl.arange(0, HEAD_DIM)
    q_heads = kv_head * GROUP + offs_g
    head_mask = offs_g < GROUP
    q = tl.load(
        q_ptr + batch_idx * stride_qb + q_heads[:, None] * stride_qh + offs_d[None, :],
        mask=head_mask[:, None],
        other=0.0,
    )

    acc = tl.zeros([GROUP_PAD, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([GROUP_PAD], dtype=tl.float32)
    m_i = tl.full([GROUP_PAD], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _attend_kv_tiles(
        acc,
        l_i,
        m_i,
        q,
        offs_g,
        tok_start,
        tok_end,
        block_tables_ptr + batch_idx.to(tl.int64) * stride_btb,
        k_cache_ptr + kv_head * stride_kh,
        v_cache_ptr + kv_head * stride_vh,
        stride_kp,
        stride_kt,
        stride_vp,
        stride_vt,
        qk_scale,
        HEAD_DIM,
        BLOCK_SIZE,
        BLOCK_N,
        MASK_BOUNDS=True,
        CAUSAL=False,
    )

    # An empty split (or context_len == 0) leaves l_i == 0: it yields o = 0 and lse = -inf.
    has_tokens = l_i > 0
    l_safe = tl.where(has_tokens, l_i, 1.0)
    o = acc / l_safe[:, None]
    if DIRECT_OUT:
        out_ptrs = out_ptr + batch_idx * stride_ob + q_heads[:, None] * stride_oh + offs_d[None, :]
        tl.store(out_ptrs, o.to(out_ptr.dtype.element_ty), mask=head_mask[:, None])
    else:
        # Workspace layout: partial_out [B, num_heads, num_splits, D], partial_lse [B, num_heads, num_splits].
        num_heads = tl.num_programs(1) * GROUP
        rows = (batch_idx * num_heads + q_heads) * num_splits + split
        lse = tl.where(has_tokens, m_i + tl.log2(l_safe), float("-inf"))
        tl.store(partial_lse_ptr + rows, lse, mask=head_mask)
        tl.store(partial_out_ptr + rows[:, None] * HEAD_DIM + offs_d[None, :], o, mask=head_mask[:, None])


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


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _H100_NUM_SMS


def default_num_splits(batch: int, num_kv_heads: int, max_context: int, num_sms: int = _H100_NUM_SMS) -> int:
    """Splits per (sequence, kv head): enough programs to fill the GPU twice, each split >= 64 tokens.

    Only host-known shapes are used (max_context comes from block_tables' width), so the choice is fixed
    for a CUDA graph; the kernel spreads each sequence's actual tiles over the splits, so a generous
    max_context only adds a few empty programs. Tuned on an H100 (bf16, 8 kv heads, head_dim 128): within
    1% of the best power-of-two split count on every shape of allmos.bench.kernel_bench.
    """
    programs = batch * num_kv_heads
    wanted = triton.next_power_of_2(triton.cdiv(2 * num_sms, max(programs, 1)))
    useful = triton.cdiv(max(max_context, 1), _MIN_TOKENS_PER_SPLIT)
    return max(1, min(wanted, useful, _MAX_SPLITS))


# ---------------------------------------------------------------------------------------------------------
# Prefill: varlen causal attention over the paged cache
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _prefill_kernel(
    q_ptr,
    k_cache_ptr,
    v_cache_ptr,
    out_ptr,
    cu_seqlens_q_ptr,
    context_lens_ptr,
    block_tables_ptr,
    qk_scale,
    stride_qt,
    stride_qh,
    stride_kp,
    stride_kt,
    stride_kh,
    stride_vp,
    stride_vt,
    stride_vh,
    stride_btb,
    stride_ot,
    stride_oh,
    GROUP: tl.constexpr,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """One program = BLOCK_M query rows of one (sequence, query head)."""
    m_block = tl.program_id(0)
    batch_idx = tl.program_id(1)
    head = tl.program_id(2)

    q_start = tl.load(cu_seqlens_q_ptr + batch_idx)
    q_len = tl.load(cu_seqlens_q_ptr + batch_idx + 1) - q_start
    first_row = m_block * BLOCK_M
    if first_row >= q_len:
        return
    ctx_len = tl.load(context_lens_ptr + batch_idx)
    prefix_len = ctx_len - q_len  # queries are the last q_len tokens of the context

    offs_m = first_row + tl.arange(0, BLOCK_M)
    offs_d = tl.arange(0, HEAD_DIM)
    row_mask = offs_m < q_len
    q_rows = (q_start + offs_m).to(tl.int64)
    q = tl.load(
        q_ptr + q_rows[:, None] * stride_qt + head * stride_qh + offs_d[None, :], mask=row_mask[:, None], other=0.0
    )
    q_pos = prefix_len + offs_m

    # Tokens [0, full_end) are visible to every row of the tile; [full_end, causal_end) need the causal mask.
    full_end = (prefix_len + first_row + 1) // BLOCK_N * BLOCK_N
    causal_end = prefix_len + tl.minimum(first_row + BLOCK_M, q_len)

    kv_head = head // GROUP
    bt_row_ptr = block_tables_ptr + batch_idx.to(tl.int64) * stride_btb
    k_head_ptr = k_cache_ptr + kv_head * stride_kh
    v_head_ptr = v_cache_ptr + kv_head * stride_vh
    acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)
    l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
    m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
    acc, l_i, m_i = _attend_kv_tiles(
        acc,
        l_i,
        m_i,
        q,
        q_pos,
        0,
        full_end,
        bt_row_ptr,
        k_head_ptr,
        v_head_ptr,
        stride_kp,
        stride_kt,
        stride_vp,
        stride_vt,
        qk_scale,
        HEAD_DIM,
        BLOCK_SIZE,
        BLOCK_N,
        MASK_BOUNDS=False,
        CAUSAL=False,
    )
    acc, l_i, m_i = _attend_kv_tiles(
        acc,
        l_i,
        m_i,
        q,
        q_pos,
        full_end,
        causal_end,
        bt_row_ptr,
        k_head_ptr,
        v_head_ptr,
        stride_kp,
        stride_kt,
        stride_vp,
        stride_vt,
        qk_scale,
        HEAD_DIM,
        BLOCK_SIZE,
        BLOCK_N,
        MASK_BOUNDS=True,
        CAUSAL=True,
    )

    o = acc / tl.where(l_i > 0, l_i, 1.0)[:, None]
    out_ptrs = out_ptr + q_rows[:, None] * stride_ot + head * stride_oh + offs_d[None, :]
    tl.store(out_ptrs, o.to(out_ptr.dtype.element_ty), mask=row_mask[:, None])


# ---------------------------------------------------------------------------------------------------------
# Host wrappers
# ---------------------------------------------------------------------------------------------------------


def _check_cache(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> tuple[int, int, int]:
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
    if q.stride(-1) != 1 or k_cache.stride(-1) != 1 or v_cache.stride(-1) != 1:
        raise ValueError("q, k_cache and v_cache need a unit stride in head_dim")
    return block_size, num_kv_heads, num_heads // num_kv_heads


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


def paged_decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    block_tables: torch.Tensor,
    context_lens: torch.Tensor,
    scale: float,
    num_splits: int | None = None,
    out: torch.Tensor | None = None,
    *,
    block_n: int | None = None,
    num_warps: int = 4,
    num_stages: int = 2,
) -> torch.Tensor:
    """Single-token attention for each sequence: q [batch, num_heads, head_dim] -> out (same shape).

    context_lens[b] KV tokens (the current one included) must already be in the cache; a zero length
    yields zeros. block_n / num_warps / num_stages are tuning knobs for benchmarks.
    """
    block_size, num_kv_heads, group = _check_cache(q, k_cache, v_cache)
    _check_index_tensors(block_tables=block_tables, context_lens=context_lens)
    batch, num_heads, head_dim = q.shape
    out = _output_like(q, out)
    if batch == 0:
        return out
    if num_splits is None:
        max_context = block_tables.shape[1] * block_size
        num_splits = default_num_splits(batch, num_kv_heads, max_context, _num_sms(q.device))
    if num_splits < 1:
        raise ValueError(f"num_splits must be >= 1; got {num_splits}")
    block_n = block_n or _DECODE_BLOCK_N

    direct = num_splits == 1
    if direct:
        partial_out = partial_lse = out  # unused by the kernel
    else:
        f32 = {"dtype": torch.float32, "device": q.device}
        partial_out = torch.empty((batch, num_heads, num_splits, head_dim), **f32)
        partial_lse = torch.empty((batch, num_heads, num_splits), **f32)

    _decode_split_kernel[(batch, num_kv_heads, num_splits)](
        q,
        k_cache,
        v_cache,
        block_tables,
        context_lens,
        out,
        partial_out,
        partial_lse,
        scale * _LOG2E,
        num_splits,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        v_cache.stride(0),
        v_cache.stride(1),
        v_cache.stride(2),
        block_tables.stride(0),
        out.stride(0),
        out.stride(1),
        GROUP=group,
        GROUP_PAD=max(16, triton.next_power_of_2(group)),
        HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size,
        BLOCK_N=block_n,
        DIRECT_OUT=direct,
        num_warps=num_warps,
        num_stages=num_stages,
    )
    if not direct:
        _decode_combine_kernel[(batch, num_heads)](
            partial_out,
            partial_lse,
            out,
            num_splits,
            out.stride(0),
            out.stride(1),
            HEAD_DIM=head_dim,
            SPLITS_PAD=triton.next_power_of_2(num_splits),
            num_warps=4 if head_dim * num_splits >= 2048 else 1,
        )
    return out


def _prefill_tiles(head_dim: int, elem_size: int) -> tuple[int, int, int]:
    """(BLOCK_M, BLOCK_N, num_warps). 64x64 with 4 warps (2 stages) was the best or within 3% of the best of
    8 tile configs on every shape of allmos.bench.kernel_bench (H100, bf16, head_dim 128; 128x64x8 warps
    was 10-25% slower). Halve BLOCK_N when the K/V tiles would crowd shared memory (fp32, head_dim 256)."""
    if head_dim * elem_size <= 256:
        return 64, 64, 4
    return 64, 32, 4


def paged_prefill_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    context_lens: torch.Tensor,
    block_tables: torch.Tensor,
    max_seqlen_q: int,
    scale: float,
    out: torch.Tensor | None = None,
    *,
    block_m: int | None = None,
    block_n: int | None = None,
    num_warps: int | None = None,
    num_stages: int = 2,
) -> torch.Tensor:
    """Varlen causal prefill: q [total_q, num_heads, head_dim] -> out (same shape).

    Sequence i owns q rows [cu_seqlens_q[i], cu_seqlens_q[i+1]) which are the last positions of its
    context_lens[i] KV tokens (all already in the cache). max_seqlen_q (host int) only sizes the grid.
    """
    block_size, _, group = _check_cache(q, k_cache, v_cache)
    _check_index_tensors(block_tables=block_tables, context_lens=context_lens, cu_seqlens_q=cu_seqlens_q)
    total_q, num_heads, head_dim = q.shape
    out = _output_like(q, out)
    batch = cu_seqlens_q.shape[0] - 1
    if total_q == 0 or batch <= 0 or max_seqlen_q <= 0:
        return out
    default_m, default_n, default_warps = _prefill_tiles(head_dim, q.element_size())
    block_m = block_m or default_m
    block_n = block_n or default_n
    num_warps = num_warps or default_warps

    grid = (triton.cdiv(max_seqlen_q, block_m), batch, num_heads)
    _prefill_kernel[grid](
        q,
        k_cache,
        v_cache,
        out,
        cu_seqlens_q,
        context_lens,
        block_tables,
        scale * _LOG2E,
        q.stride(0),
        q.stride(1),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        v_cache.stride(0),
        v_cache.stride(1),
        v_cache.stride(2),
        block_tables.stride(0),
        out.stride(0),
        out.stride(1),
        GROUP=group,
        HEAD_DIM=head_dim,
        BLOCK_SIZE=block_size,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return out


__all__ = ["default_num_splits", "paged_decode_attention", "paged_prefill_attention"]
