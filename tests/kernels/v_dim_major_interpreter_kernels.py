"""CPU tests (Triton interpreter) of V pages stored dim-major, [num_blocks, H, D, block_size], which the decode
and prefill kernels take as a view of the usual [num_blocks, block_size, H, D] shape whose token stride is 1.
On sm_90 that layout lets the FP8 decode copy V tiles in wide asynchronous loads instead of byte by byte
(tests/kernels/test_triton_compile_cpu.py). The kernels read such tiles whole: the tokens past a context are
read too, with probability 0, so each output must equal the token-major pages' output exactly. Pages stored
head-major, [num_blocks, H, block_size, D] (kernel_bench_fp8 --head-major), are a strided view like any other:
the decode over them must equal the token-major output exactly too."""

import importlib

import pytest
import torch
from paged_reference import make_paged_cache
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_fp8_kernels_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

from allmos.kv_store import fp8  # noqa: E402
from allmos.kv_store.base import KVScales  # noqa: E402

common = importlib.import_module("allmos.attention.kernels.common")
paged_decode_attention = importlib.import_module("allmos.attention.kernels.decode").paged_decode_attention
paged_prefill_attention = importlib.import_module("allmos.attention.kernels.prefill").paged_prefill_attention


def dim_major(v_cache: torch.Tensor) -> torch.Tensor:
    """The same values stored [num_blocks, H, D, block_size], viewed as [num_blocks, block_size, H, D]."""
    return v_cache.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


def head_major(cache: torch.Tensor) -> torch.Tensor:
    """The same values stored [num_blocks, H, block_size, D], viewed as [num_blocks, block_size, H, D]."""
    return cache.transpose(1, 2).contiguous().transpose(1, 2)


def pages(context_lens, block_size, dtype, seed):
    """K/V pages (fp8 with their scales, or float), block tables and a generator."""
    gen = torch.Generator().manual_seed(seed)
    k, v, tables = make_paged_cache(context_lens, block_size, 2, 32, torch.float32, gen)
    if dtype != "fp8":
        return k.to(dtype), v.to(dtype), None, tables, gen
    k_scales, v_scales = fp8.row_scales(k, None), fp8.row_scales(v, None)
    k8, v8 = fp8.quantize(k, k_scales), fp8.quantize(v, v_scales)
    scales = KVScales(k_scales.transpose(1, 2).contiguous(), v_scales.transpose(1, 2).contiguous())
    return k8, v8, scales, tables, gen


def test_the_dim_major_view_is_recognized_and_other_strides_refused():
    v = torch.zeros(4, 16, 2, 32)
    assert not common.v_dim_major(v) and common.v_dim_major(dim_major(v))
    q, k = torch.zeros(1, 4, 32), torch.zeros(4, 16, 2, 32)
    assert common._check_cache(q, k, dim_major(v)) == (16, 2, 2)
    with pytest.raises(ValueError, match="v_cache needs a unit stride"):
        common._check_cache(q, k, v.transpose(2, 3).contiguous().transpose(2, 3))
    with pytest.raises(ValueError, match="q and k_cache need a unit stride"):
        common._check_cache(q, dim_major(k), v)


@pytest.mark.parametrize("dtype", ["fp8", torch.float32])
@pytest.mark.parametrize(
    "block_size,num_splits,block_n,prefetch",
    [(16, 1, 16, False), (16, 3, 16, True), (32, 2, 16, True), (16, 2, 32, False), (64, 1, 64, True)],
    ids=["one_split", "splits_prefetch", "tile_in_page", "tile_over_pages", "one_page_tiles"],
)
def test_decode_over_dim_major_v_equals_token_major(dtype, block_size, num_splits, block_n, prefetch):
    context_lens = [1, 0, 37, 64, 150]
    k, v, scales, tables, gen = pages(context_lens, block_size, dtype, seed=block_size + num_splits)
    q = torch.randn(len(context_lens), 4, 32, generator=gen)
    lens = torch.tensor(context_lens, dtype=torch.int32)
    launch = {"block_n": block_n, "scales": scales, "prefetch_kv": prefetch}
    want = paged_decode_attention(q, k, v, tables, lens, 32**-0.5, num_splits, **launch)
    got = paged_decode_attention(q, k, dim_major(v), tables, lens, 32**-0.5, num_splits, **launch)
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", ["fp8", torch.float32])
@pytest.mark.parametrize("block_size", [16, 32])
def test_prefill_over_dim_major_v_equals_token_major(dtype, block_size):
    q_lens, context_lens = [37, 1, 16, 20], [37, 30, 50, 65]
    k, v, scales, tables, gen = pages(context_lens, block_size, dtype, seed=block_size)
    q = torch.randn(sum(q_lens), 4, 32, generator=gen)
    cu = torch.tensor([0, *q_lens]).cumsum(0).to(torch.int32)
    lens = torch.tensor(context_lens, dtype=torch.int32)
    launch = {"block_m": 16, "block_n": 16, "scales": scales}
    want = paged_prefill_attention(q, k, v, cu, lens, tables, max(q_lens), 32**-0.5, **launch)
    got = paged_prefill_attention(q, k, dim_major(v), cu, lens, tables, max(q_lens), 32**-0.5, **launch)
    assert torch.equal(got, want)


@pytest.mark.parametrize("dtype", ["fp8", torch.float32])
@pytest.mark.parametrize("num_splits,block_n,prefetch", [(1, 16, False), (3, 16, True), (2, 32, False)])
def test_decode_over_head_major_pages_equals_token_major(dtype, num_splits, block_n, prefetch):
    context_lens = [1, 0, 37, 64, 150]
    k, v, scales, tables, gen = pages(context_lens, 16, dtype, seed=num_splits)
    q = torch.randn(len(context_lens), 4, 32, generator=gen)
    lens = torch.tensor(context_lens, dtype=torch.int32)
    launch = {"block_n": block_n, "scales": scales, "prefetch_kv": prefetch}
    assert not common.v_dim_major(head_major(v))
    want = paged_decode_attention(q, k, v, tables, lens, 32**-0.5, num_splits, **launch)
    got = paged_decode_attention(q, head_major(k), head_major(v), tables, lens, 32**-0.5, num_splits, **launch)
    assert torch.equal(got, want)
