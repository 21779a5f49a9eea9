"""CPU tests of the Triton paged prefill attention through the interpreter (see
triton_interpreter_kernels.py for why these modules run in their own process)."""

import importlib

import pytest
import torch
from paged_reference import assert_close, gather_kv, make_paged_cache, reference_attention
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_triton_kernels_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

paged_prefill_attention = importlib.import_module("allmos.attention.kernels.prefill").paged_prefill_attention


# ---------------------------------------------------------------------------------------------------------
# paged_prefill_attention
# ---------------------------------------------------------------------------------------------------------


def prefill_reference(q, k_cache, v_cache, cu_seqlens, context_lens, block_tables, scale):
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b in range(len(context_lens)):
        start, end = cu_seqlens[b].item(), cu_seqlens[b + 1].item()
        length = context_lens[b].item()
        k = gather_kv(k_cache, block_tables[b], length)
        v = gather_kv(v_cache, block_tables[b], length)
        positions = torch.arange(length - (end - start), length)
        out[start:end] = reference_attention(q[start:end], k, v, scale, positions)
    return out


def run_prefill_case(
    q_lens,
    context_lens,
    num_heads,
    num_kv_heads,
    head_dim,
    block_size,
    block_m=None,
    block_n=None,
    dtype=torch.float32,
    seed=0,
):
    gen = torch.Generator().manual_seed(seed)
    k_cache, v_cache, block_tables = make_paged_cache(context_lens, block_size, num_kv_heads, head_dim, dtype, gen)
    cu_seqlens = torch.tensor([0] + q_lens, dtype=torch.int32).cumsum(0).to(torch.int32)
    lens = torch.tensor(context_lens, dtype=torch.int32)
    q = torch.randn(sum(q_lens), num_heads, head_dim, generator=gen).to(dtype)
    scale = head_dim**-0.5
    out = torch.full(q.shape, float("nan"), dtype=dtype)

    paged_prefill_attention(
        q,
        k_cache,
        v_cache,
        cu_seqlens,
        lens,
        block_tables,
        max(q_lens),
        scale,
        out=out,
        block_m=block_m,
        block_n=block_n,
    )
    return out, prefill_reference(q, k_cache, v_cache, cu_seqlens, lens, block_tables, scale)


# (q_lens, context_lens): fresh prompts, cached prefixes (context > q_len), single-token queries.
PREFILL_BATCH = ([37, 1, 16, 5, 20], [37, 30, 16, 50, 65])


@pytest.mark.parametrize(
    "block_size,block_m,block_n",
    [(16, 16, 16), (32, 16, 16), (16, 32, 32), (16, None, None)],
)
def test_prefill_matches_reference(block_size, block_m, block_n):
    q_lens, context_lens = PREFILL_BATCH
    out, ref = run_prefill_case(q_lens, context_lens, 4, 2, 32, block_size, block_m, block_n)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_prefill_head_dim_64_multi_query_group():
    out, ref = run_prefill_case([9, 24], [9, 40], 8, 1, 64, 16, block_m=16, block_n=16, seed=3)
    assert_close(out, ref, atol=1e-4, rtol=1e-4)


def test_prefill_fp16():
    out, ref = run_prefill_case([12, 3], [12, 33], 2, 2, 16, 16, block_m=16, block_n=16, dtype=torch.float16, seed=4)
    assert_close(out, ref, atol=2e-3, rtol=2e-3)
