"""CPU tests of the decode kernel's first-tile prefetch (prefetch_kv, the PREFETCH constexpr) through the
Triton interpreter (see triton_interpreter_kernels.py for why these modules run in their own process).

The interpreter runs kernels one at a time, so what the prefetch must survive on a GPU (the newest token's
K/V written by the kernel right before while the pre-wait loads run) cannot happen here. What can be held
here: the pre-wait tile never holds the newest token (it is read after the wait), the completed tile holds
it as the cache holds it, and the attention with the prefetch is bit for bit the attention without it
and matches a dense float64 reference: short contexts (the newest token in the first tile of its split),
several splits with both combines, FP8 pages, 16-bit queries, CUDA-graph padding rows (context 0), and a
newest token written by the store kernel just before."""

import importlib

import pytest
import torch
from paged_reference import assert_close, gather_kv, make_paged_cache, reference_attention
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_triton_kernels_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from allmos.kv_store import fp8  # noqa: E402
from allmos.kv_store.base import KVScales  # noqa: E402

prefetch = importlib.import_module("allmos.attention.kernels.decode_prefetch")
_prefetch_first_tile, _complete_first_tile = prefetch._prefetch_first_tile, prefetch._complete_first_tile
paged_decode_attention = importlib.import_module("allmos.attention.kernels.decode").paged_decode_attention
decode_counters = importlib.import_module("allmos.attention.kernels.decode_merge").decode_counters
store_kv_triton = importlib.import_module("allmos.kv_store.kernels.store").store_kv_triton

HEADS, KV_HEADS, HEAD_DIM = 4, 2, 32
H100_SMS = 132


def decode_reference(q, k_cache, v_cache, block_tables, context_lens, scale):
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b, length in enumerate(context_lens.tolist()):
        if length:
            k, v = gather_kv(k_cache, block_tables[b], length), gather_kv(v_cache, block_tables[b], length)
            out[b] = reference_attention(q[b : b + 1], k, v, scale, torch.tensor([length - 1]))[0]
    return out


def decode_both_ways(q, k_cache, v_cache, tables, lens, num_splits, block_n, **kwargs):
    """The decode with and without the prefetch; asserts that the launch does prefetch."""
    programs = KV_HEADS * len(lens) * (num_splits or 1)
    assert prefetch.prefetches_first_tile(True, programs, block_n or 64, H100_SMS)
    args = (q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5, num_splits)
    with_prefetch = paged_decode_attention(*args, block_n=block_n, prefetch_kv=True, **kwargs)
    without = paged_decode_attention(*args, block_n=block_n, prefetch_kv=False, **kwargs)
    return with_prefetch, without


# ---------------------------------------------------------------------------------------------------------
# The first tile itself: what is read before the wait and what after it
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _first_tile_probe_kernel(
    block_table_ptr,
    k_cache_ptr,
    v_cache_ptr,
    k_scale_ptr,
    v_scale_ptr,
    out_ptr,
    scales_out_ptr,
    tok_start,
    tok_end,
    ctx_len,
    stride_p,
    stride_t,
    stride_sp,
    HEAD_DIM: tl.constexpr,
    BLOCK_SIZE: tl.constexpr,
    BLOCK_N: tl.constexpr,
    FP8: tl.constexpr,
):
    """Stores the pre-wait tile's K, V (out[0], out[1]) and the completed tile's (out[2], out[3]); with FP8
    their scales likewise. One kv head."""
    tok, in_range, page, slot, k_ptrs, v_ptrs, k0, v0, k_scales0, v_scales0 = _prefetch_first_tile(
        block_table_ptr, tok_start, tok_end, ctx_len, k_cache_ptr, v_cache_ptr, k_scale_ptr, v_scale_ptr,
        stride_p, stride_t, stride_p, stride_t, stride_sp, HEAD_DIM, BLOCK_SIZE, BLOCK_N, FP8,
    )  # fmt: skip
    _, _, k, v, k_scales, v_scales = _complete_first_tile(
        ctx_len, tok, in_range, page, slot, k_ptrs, v_ptrs, k0, v0, k_scales0, v_scales0, k_scale_ptr, v_scale_ptr,
        stride_sp, FP8,
    )  # fmt: skip
    tile = tl.arange(0, BLOCK_N)[:, None] * HEAD_DIM + tl.arange(0, HEAD_DIM)[None, :]
    tl.store(out_ptr + tile, k0.to(tl.float32))
    tl.store(out_ptr + BLOCK_N * HEAD_DIM + tile, v0.to(tl.float32))
    tl.store(out_ptr + 2 * BLOCK_N * HEAD_DIM + tile, k.to(tl.float32))
    tl.store(out_ptr + 3 * BLOCK_N * HEAD_DIM + tile, v.to(tl.float32))
    if FP8:
        offs = tl.arange(0, BLOCK_N)
        tl.store(scales_out_ptr + offs, k_scales0)
        tl.store(scales_out_ptr + BLOCK_N + offs, v_scales0)
        tl.store(scales_out_ptr + 2 * BLOCK_N + offs, k_scales)
        tl.store(scales_out_ptr + 3 * BLOCK_N + offs, v_scales)


def probe_first_tile(k_cache, v_cache, scales, table, tok_start, tok_end, ctx_len, block_n):
    """(pre-wait K, V, completed K, V) [4, block_n, D] and their scales [4, block_n] (FP8) of one split."""
    out = torch.full((4, block_n, HEAD_DIM), float("nan"))
    scales_out = torch.full((4, block_n), float("nan"))
    k_scales, v_scales = (scales.k, scales.v) if scales is not None else (out, out)
    _first_tile_probe_kernel[(1,)](
        table, k_cache, v_cache, k_scales, v_scales, out, scales_out, tok_start, tok_end, ctx_len,
        k_cache.stride(0), k_cache.stride(1), k_scales.stride(0), HEAD_DIM=HEAD_DIM, BLOCK_SIZE=k_cache.shape[1],
        BLOCK_N=block_n, FP8=scales is not None,
    )  # fmt: skip
    return out, scales_out


def cache_rows(cache, table, tok_start, block_n, tok_end):
    """The rows [tok_start, tok_start + block_n) as the tile holds them: zeros from tok_end on."""
    rows = torch.zeros(block_n, *cache.shape[2:])
    tokens = torch.arange(tok_start, tok_end)
    rows[: len(tokens)] = cache[table[tokens // cache.shape[1]].long(), tokens % cache.shape[1]].float()
    return rows


# (tok_start, tok_end, context, block_size, block_n): the newest token inside the tile (first, middle and
# last row; tiles across pages and inside one page), a split before the newest token, context 1.
FIRST_TILES = [
    (0, 40, 40, 16, 64),
    (0, 1, 1, 16, 64),
    (0, 64, 64, 16, 64),
    (64, 65, 65, 32, 64),
    (32, 40, 40, 64, 16),
    (0, 32, 40, 16, 32),
]


@pytest.mark.parametrize("fp8_pages", [False, True], ids=["float32", "fp8"])
@pytest.mark.parametrize("tok_start,tok_end,context,block_size,block_n", FIRST_TILES)
def test_the_newest_token_is_read_only_after_the_wait(tok_start, tok_end, context, block_size, block_n, fp8_pages):
    gen = torch.Generator().manual_seed(context)
    k_cache, v_cache, tables = make_paged_cache([context], block_size, 1, HEAD_DIM, torch.float32, gen)
    scales = None
    if fp8_pages:
        k_scales, v_scales = fp8.row_scales(k_cache, None), fp8.row_scales(v_cache, None) * 3
        k_cache, v_cache = fp8.quantize(k_cache, k_scales), fp8.quantize(v_cache, v_scales)
        scales = KVScales(k_scales.transpose(1, 2).contiguous(), v_scales.transpose(1, 2).contiguous(), None)
    tiles, tile_scales = probe_first_tile(k_cache, v_cache, scales, tables[0], tok_start, tok_end, context, block_n)

    newest = context - 1 - tok_start  # its row in the tile
    for i, cache in enumerate((k_cache, v_cache)):
        completed = cache_rows(cache, tables[0], tok_start, block_n, tok_end)[:, 0]
        before_wait = completed.clone()
        if newest < tok_end - tok_start:
            before_wait[newest] = 0
            assert completed[newest].abs().sum() > 0
        assert torch.equal(tiles[i], before_wait) and torch.equal(tiles[2 + i], completed)
    if fp8_pages:
        for i, s in enumerate((scales.k, scales.v)):
            completed = cache_rows(s.transpose(1, 2), tables[0], tok_start, block_n, tok_end)[:, 0]
            before_wait = completed.clone()
            if newest < tok_end - tok_start:
                before_wait[newest] = 0
            assert torch.equal(tile_scales[i], before_wait) and torch.equal(tile_scales[2 + i], completed)


# ---------------------------------------------------------------------------------------------------------
# The attention with the prefetch
# ---------------------------------------------------------------------------------------------------------


def float_case(context_lens, block_size, seed, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    k_cache, v_cache, tables = make_paged_cache(context_lens, block_size, KV_HEADS, HEAD_DIM, dtype, gen)
    q = torch.randn(len(context_lens), HEADS, HEAD_DIM, generator=gen).to(dtype)
    return q, k_cache, v_cache, tables, torch.tensor(context_lens, dtype=torch.int32)


# 0: a CUDA-graph padding row; 1, 2, 63, 64, 65: the newest token in the first tile of the last split.
SHORT_CONTEXTS = [1, 0, 2, 63, 64, 65]


@pytest.mark.parametrize("num_splits", [1, 2])
@pytest.mark.parametrize("block_size,block_n", [(16, 64), (64, 32)])
def test_short_contexts_with_and_without_prefetch(block_size, block_n, num_splits):
    q, k_cache, v_cache, tables, lens = float_case(SHORT_CONTEXTS, block_size, seed=block_n + num_splits)
    ours, plain = decode_both_ways(q, k_cache, v_cache, tables, lens, num_splits, block_n)
    assert torch.equal(ours, plain)
    assert_close(ours, decode_reference(q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5), atol=1e-4, rtol=1e-4)
    assert torch.all(ours[1] == 0)


@pytest.mark.parametrize("fused_combine", [True, False], ids=["fused", "two_kernels"])
@pytest.mark.parametrize("num_splits", [3, 8])
def test_several_splits_with_and_without_prefetch(num_splits, fused_combine):
    # 37 with 8 splits of 16-token tiles: 3 splits hold tokens, 5 are empty.
    q, k_cache, v_cache, tables, lens = float_case([250, 0, 37, 100, 1], 16, seed=num_splits)
    counters = decode_counters(len(lens), KV_HEADS, "cpu") if fused_combine else None
    ours, plain = decode_both_ways(
        q, k_cache, v_cache, tables, lens, num_splits, 16, fused_combine=fused_combine, counters=counters
    )
    assert torch.equal(ours, plain)
    assert_close(ours, decode_reference(q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5), atol=1e-4, rtol=1e-4)
    assert torch.all(ours[1] == 0)
    if fused_combine:
        assert torch.all(counters == 0)


def test_16_bit_queries_with_and_without_prefetch():
    q, k_cache, v_cache, tables, lens = float_case([70, 5, 0, 64], 16, seed=4, dtype=torch.float16)
    ours, plain = decode_both_ways(q, k_cache, v_cache, tables, lens, 2, 32)
    assert torch.equal(ours, plain)
    assert_close(ours, decode_reference(q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5), atol=2e-3, rtol=2e-3)


@pytest.mark.parametrize("q_dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("num_splits,block_n", [(1, 64), (3, 16)])
def test_fp8_pages_with_and_without_prefetch(num_splits, block_n, q_dtype):
    context_lens = [1, 0, 37, 64, 150]
    q, k_float, v_float, tables, lens = float_case(context_lens, 16, seed=num_splits)
    k_scales, v_scales = fp8.row_scales(k_float, None), fp8.row_scales(v_float, None)
    k_cache, v_cache = fp8.quantize(k_float, k_scales), fp8.quantize(v_float, v_scales)
    scales = KVScales(k_scales.transpose(1, 2).contiguous(), v_scales.transpose(1, 2).contiguous(), None)
    ours, plain = decode_both_ways(q.to(q_dtype), k_cache, v_cache, tables, lens, num_splits, block_n, scales=scales)
    assert torch.equal(ours, plain)
    k_deq, v_deq = fp8.dequantize(k_cache, k_scales, torch.float64), fp8.dequantize(v_cache, v_scales, torch.float64)
    tolerance = 1e-4 if q_dtype == torch.float32 else 2e-2
    expected = decode_reference(q.to(q_dtype).float(), k_deq, v_deq, tables, lens, HEAD_DIM**-0.5)
    assert_close(ours, expected, atol=tolerance, rtol=tolerance)
    assert torch.all(ours[1] == 0)


def test_the_newest_token_as_the_store_wrote_it():
    """Each step's newest token is written by the store kernel, then attended: the prefetching decode sees
    the row the store wrote (not the poison the slot held before)."""
    gen = torch.Generator().manual_seed(9)
    context_lens = [40, 64, 1]
    room = [n + 2 for n in context_lens]  # two steps
    k_cache, v_cache, tables = make_paged_cache(room, 16, KV_HEADS, HEAD_DIM, torch.float32, gen)
    lens = torch.tensor(context_lens, dtype=torch.int32)
    for _ in range(2):
        newest = (lens - 1).long()
        slots = tables[torch.arange(len(lens)), newest // 16].long() * 16 + newest % 16
        k_cache.view(-1, KV_HEADS, HEAD_DIM)[slots] = 1.0e4  # what a stale read would see
        new_k = torch.randn(len(lens), KV_HEADS, HEAD_DIM, generator=gen)
        new_v = torch.randn(len(lens), KV_HEADS, HEAD_DIM, generator=gen)
        store_kv_triton(new_k, new_v, k_cache, v_cache, slots)
        q = torch.randn(len(lens), HEADS, HEAD_DIM, generator=gen)
        ours, plain = decode_both_ways(q, k_cache, v_cache, tables, lens, 2, 32)
        assert torch.equal(ours, plain)
        assert_close(ours, decode_reference(q, k_cache, v_cache, tables, lens, HEAD_DIM**-0.5), atol=1e-4, rtol=1e-4)
        lens += 1


def test_prefetch_only_where_the_tile_fits_and_the_launch_is_resident():
    assert prefetch.prefetches_first_tile(True, 256, 64, H100_SMS)  # batch 1, 8 kv heads, 32 splits
    assert prefetch.prefetches_first_tile(True, 3 * H100_SMS, 16, H100_SMS)
    assert not prefetch.prefetches_first_tile(False, 256, 64, H100_SMS)  # asked not to
    assert not prefetch.prefetches_first_tile(True, 256, 128, H100_SMS)  # 128-token tiles: 255 registers
    assert not prefetch.prefetches_first_tile(True, 3 * H100_SMS + 1, 64, H100_SMS)  # two waves
