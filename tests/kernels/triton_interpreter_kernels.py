"""CPU tests of the Triton kernels through the Triton interpreter (TRITON_INTERPRET=1).

The interpreter computes bf16 dots wrongly, so inputs are float32 (exact "ieee" dots) or float16.
GPU tests at realistic sizes live in test_triton_kernels_gpu.py.

TRITON_INTERPRET must be set before triton is first imported (triton's own jit library is bound to the
interpreter at import), and it then holds for the rest of the pytest process. So that it never leaks into
compiled-kernel tests, this module skips itself on machines with CUDA unless TRITON_INTERPRET=1 is already
set (`TRITON_INTERPRET=1 pytest tests/kernels/triton_interpreter_kernels.py` runs it there;
test_triton_kernels_cpu.py runs it in its own process).
"""

import importlib

import pytest
import torch
from paged_reference import SENTINEL, assert_close, gather_kv, make_paged_cache, reference_attention
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_triton_kernels_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

_decode = importlib.import_module("allmos.attention.kernels.decode")
decode_counters = importlib.import_module("allmos.attention.kernels.decode_merge").decode_counters
default_num_splits = _decode.default_num_splits
paged_decode_attention = _decode.paged_decode_attention
store_kv_triton = importlib.import_module("allmos.kv_store.kernels.store").store_kv_triton


# ---------------------------------------------------------------------------------------------------------
# store_kv_triton
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("slot_dtype", [torch.int32, torch.int64])
@pytest.mark.parametrize("num_kv_heads,head_dim", [(2, 16), (3, 24)])
def test_store_kv_matches_python_loop(slot_dtype, num_kv_heads, head_dim):
    gen = torch.Generator().manual_seed(0)
    num_tokens, num_blocks, block_size = 7, 4, 4
    # k and v as non-contiguous views into a fused qkv projection output.
    qkv = torch.randn(num_tokens, 2 + 2 * num_kv_heads, head_dim, generator=gen)
    k = qkv[:, 2 : 2 + num_kv_heads]
    v = qkv[:, 2 + num_kv_heads :]
    assert not k.is_contiguous()
    slots = torch.randperm(num_blocks * block_size, generator=gen)[:num_tokens]
    slots[[1, 4]] = -1
    slot_mapping = slots.to(slot_dtype)

    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.full(shape, SENTINEL)
    v_cache = torch.full(shape, SENTINEL)
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    for t, slot in enumerate(slots.tolist()):
        if slot >= 0:
            expected_k[slot // block_size, slot % block_size] = k[t]
            expected_v[slot // block_size, slot % block_size] = v[t]

    store_kv_triton(k, v, k_cache, v_cache, slot_mapping)
    assert torch.equal(k_cache, expected_k)
    assert torch.equal(v_cache, expected_v)
    assert (k_cache == SENTINEL).sum() == (num_blocks * block_size - 5) * num_kv_heads * head_dim


def test_store_kv_casts_to_cache_dtype():
    k = torch.randn(3, 2, 16)
    v = torch.randn(3, 2, 16)
    k_cache = torch.full((2, 4, 2, 16), SENTINEL, dtype=torch.float16)
    v_cache = torch.full((2, 4, 2, 16), SENTINEL, dtype=torch.float16)
    store_kv_triton(k, v, k_cache, v_cache, torch.tensor([5, 0, 7]))
    assert torch.equal(k_cache[1, 1], k[0].half())
    assert torch.equal(v_cache[1, 3], v[2].half())


def test_store_kv_rejects_bad_shapes():
    k = torch.randn(3, 2, 16)
    cache = torch.zeros(2, 4, 2, 8)
    with pytest.raises(ValueError):
        store_kv_triton(k, k, cache, cache, torch.zeros(3, dtype=torch.int32))


# ---------------------------------------------------------------------------------------------------------
# paged_decode_attention
# ---------------------------------------------------------------------------------------------------------


def decode_reference(q, k_cache, v_cache, block_tables, context_lens, scale):
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b, length in enumerate(context_lens.tolist()):
        if length == 0:
            continue
        k = gather_kv(k_cache, block_tables[b], length)
        v = gather_kv(v_cache, block_tables[b], length)
        out[b] = reference_attention(q[b : b + 1], k, v, scale, torch.tensor([length - 1]))[0]
    return out


def run_decode_case(
    num_heads,
    num_kv_heads,
    head_dim,
    block_size,
    context_lens,
    num_splits,
    block_n=None,
    dtype=torch.float32,
    seed=0,
    longest_first=False,
    fused_combine=True,
    counters=None,
):
    gen = torch.Generator().manual_seed(seed)
    k_cache, v_cache, block_tables = make_paged_cache(context_lens, block_size, num_kv_heads, head_dim, dtype, gen)
    batch = len(context_lens)
    # Non-contiguous q: the query slice of a fused qkv tensor.
    qkv = torch.randn(batch, num_heads + 2 * num_kv_heads, head_dim, generator=gen).to(dtype)
    q = qkv[:, :num_heads]
    lens = torch.tensor(context_lens, dtype=torch.int32)
    scale = head_dim**-0.5
    out = torch.full(q.shape, float("nan"), dtype=dtype)

    order = torch.argsort(lens, descending=True) if longest_first else None
    result = paged_decode_attention(
        q,
        k_cache,
        v_cache,
        block_tables,
        lens,
        scale,
        num_splits=num_splits,
        out=out,
        seq_order=order,
        block_n=block_n,
        fused_combine=fused_combine,
        counters=counters,
    )
    assert result is out
    return out, decode_reference(q, k_cache, v_cache, block_tables, lens, scale)


@pytest.mark.parametrize("num_splits", [1, 2, 3])
@pytest.mark.parametrize("block_size,block_n", [(16, None), (32, 16), (16, 32)])
@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 2), (8, 1)])
def test_decode_matches_reference(num_heads, num_kv_heads, block_size, block_n, num_splits):
    # 0: CUDA-graph padding row; 1; exact and non-multiples of the block size; several pages.
    context_lens = [1, 0, 37, 2 * block_size, 100]
    out, ref = run_decode_case(num_heads, num_kv_heads, 32, block_size, context_lens, num_splits, block_n)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert torch.all(out[1] == 0)


@pytest.mark.parametrize("num_splits", [2, 3])
def test_decode_two_kernel_combine_matches_reference(num_splits):
    out, ref = run_decode_case(4, 2, 32, 16, [1, 0, 37, 100], num_splits, block_n=16, fused_combine=False)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert torch.all(out[1] == 0)


# 0: padding row; 5: shorter than one tile; 37 with 8 splits: 3 splits hold tokens, 5 are empty.
FUSED_CONTEXTS = [1, 0, 5, 37, 100, 250]


@pytest.mark.parametrize("num_splits", [2, 3, 8])
@pytest.mark.parametrize("num_heads,num_kv_heads", [(4, 2), (6, 2), (8, 1)])
def test_decode_fused_combine_matches_reference(num_heads, num_kv_heads, num_splits):
    counters = decode_counters(len(FUSED_CONTEXTS), num_kv_heads, "cpu")
    out, ref = run_decode_case(
        num_heads, num_kv_heads, 32, 16, FUSED_CONTEXTS, num_splits, block_n=16, counters=counters, seed=num_splits
    )
    assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert torch.all(out[1] == 0)
    assert torch.all(counters == 0), "the merging program must reset its counter"


@pytest.mark.parametrize("batch", [1, 3])
def test_decode_fused_combine_over_the_batch_sizes(batch):
    contexts = [250, 37, 0][:batch]
    out, ref = run_decode_case(4, 2, 32, 16, contexts, num_splits=8, block_n=16, seed=batch)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_decode_fused_combine_merges_a_large_group_in_several_passes():
    # group 8 x 16 splits x head_dim 128 is over the merge tile: the merge takes 4 heads at a time.
    assert _decode._heads_per_merge(8, 16, 128) == 4
    out, ref = run_decode_case(8, 1, 128, 16, [300, 3, 129], num_splits=16, block_n=16, seed=5)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_decode_fused_combine_with_longest_first_order():
    out, ref = run_decode_case(4, 2, 32, 16, [5, 0, 90, 33, 64, 1], 3, block_n=16, longest_first=True, seed=3)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_decode_fused_combine_reuses_its_counters():
    """Two calls on one counters buffer (the second with other contexts) each match the reference:
    every call leaves the counters at zero for the next."""
    gen = torch.Generator().manual_seed(7)
    contexts = [100, 250, 16]
    k_cache, v_cache, block_tables = make_paged_cache(contexts, 16, 2, 32, torch.float32, gen)
    q = torch.randn(3, 4, 32, generator=gen)
    counters = decode_counters(3, 2, "cpu")
    for lens in ([100, 250, 16], [99, 3, 16], [100, 250, 16]):
        lens = torch.tensor(lens, dtype=torch.int32)
        out = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.2, 4, block_n=16, counters=counters)
        assert_close(out, decode_reference(q, k_cache, v_cache, block_tables, lens, 0.2), atol=1e-4, rtol=1e-4)
        assert torch.all(counters == 0)


@pytest.mark.parametrize(
    "counters,match",
    [
        (torch.zeros(3, dtype=torch.int32), ">= batch"),
        (torch.zeros(4, dtype=torch.int64), "int32"),
        (torch.zeros(8, dtype=torch.int32)[::2], "contiguous"),
    ],
)
def test_decode_rejects_bad_counters(counters, match):
    q = torch.randn(2, 4, 16)
    cache = torch.randn(2, 16, 2, 16)
    tables, lens = torch.zeros(2, 1, dtype=torch.int32), torch.ones(2, dtype=torch.int32)
    with pytest.raises(ValueError, match=match):
        paged_decode_attention(q, cache, cache, tables, lens, 1.0, num_splits=2, counters=counters)


def test_triton_backend_keeps_one_counters_buffer():
    from allmos.attention.backend import HeadShape
    from allmos.attention.triton_backend import TritonBackend, TritonOptions
    from allmos.registry import BuildContext

    backend = TritonBackend(TritonOptions(), BuildContext(heads=HeadShape(4, 2, 16, 0.25)))
    big = backend.counters_for(8, torch.device("cpu"))
    assert big.shape == (16,) and torch.all(big == 0)
    assert backend.counters_for(3, torch.device("cpu")) is big  # smaller batches reuse it
    assert backend.counters_for(9, torch.device("cpu")).shape == (18,)


@pytest.mark.parametrize("num_splits", [1, 3])
def test_decode_longest_first_order_gives_the_same_attention(num_splits):
    context_lens = [5, 0, 90, 33, 64, 1]
    out, ref = run_decode_case(4, 2, 32, 16, context_lens, num_splits, longest_first=True, seed=3)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)
    assert torch.all(out[1] == 0)


def test_decode_rejects_a_wrong_order_shape():
    q = torch.randn(2, 2, 16)
    cache = torch.randn(2, 16, 1, 16)
    tables, lens = torch.zeros(2, 1, dtype=torch.int32), torch.ones(2, dtype=torch.int32)
    with pytest.raises(ValueError, match="seq_order"):
        paged_decode_attention(q, cache, cache, tables, lens, 1.0, seq_order=torch.zeros(3, dtype=torch.int64))


def test_decode_default_splits_and_fp16():
    out, ref = run_decode_case(4, 2, 16, 16, [5, 70, 0], num_splits=None, dtype=torch.float16, seed=1)
    assert_close(out, ref, atol=2e-3, rtol=2e-3)


def test_decode_more_splits_than_tiles():
    out, ref = run_decode_case(2, 2, 16, 16, [3, 20], num_splits=8, seed=2)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_decode_rejects_bad_head_dim():
    q = torch.randn(1, 2, 24)
    cache = torch.randn(2, 16, 1, 24)
    with pytest.raises(ValueError, match="head_dim"):
        paged_decode_attention(
            q, cache, cache, torch.zeros(1, 1, dtype=torch.int32), torch.ones(1, dtype=torch.int32), 1.0
        )


def test_default_num_splits():
    assert default_num_splits(256, 8, 4096) == 1  # grid already 2048 programs
    assert default_num_splits(16, 8, 4096) == 4  # 128 programs -> fill 2 x 132 SMs
    assert default_num_splits(1, 8, 4096) == 32  # small grid: spread a long context (capped)
    assert default_num_splits(1, 8, 300) == 5  # short contexts: keep >= 64 tokens per split
