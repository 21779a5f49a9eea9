"""CPU tests of the FP8 (float8 e4m3) KV cache in the Triton kernels, through the interpreter (see
triton_interpreter_kernels.py for why these modules run in their own process): the store and the rope
kernel's fused store write the torch path's bytes and scales; paged decode and prefill attention over
FP8 pages match attention over the dequantized pages tightly, and attention over the original float
values within a tolerance stated per scaling mode.

The Triton 3.6 interpreter's own float32 -> e4m3 cast rounds ties up and drops carries into the
exponent (31.0 -> 16.0); the kernels round in float32 first (allmos.triton_shared.fp8.round_to_e4m3),
so that cast only ever sees exact e4m3 values, here as on the GPU."""

import importlib

import pytest
import torch
from paged_reference import assert_close, gather_kv, make_paged_cache, reference_attention
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_fp8_kernels_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

import triton  # noqa: E402
import triton.language as tl  # noqa: E402

from allmos.kv_store import fp8  # noqa: E402
from allmos.kv_store.base import (  # noqa: E402
    KVScales,
    KVStoreOptions,
    KVTarget,
)
from allmos.kv_store.torch_store import TorchKVStore  # noqa: E402
from allmos.registry import BuildContext  # noqa: E402

store_kv_triton = importlib.import_module("allmos.kv_store.kernels.store").store_kv_triton
qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton
paged_decode_attention = importlib.import_module("allmos.attention.kernels.decode").paged_decode_attention
paged_prefill_attention = importlib.import_module("allmos.attention.kernels.prefill").paged_prefill_attention
round_to_e4m3 = importlib.import_module("allmos.triton_shared.fp8").round_to_e4m3

FIXED_SCALES = [None, 1.0]  # per (token, kv head) amax / 448 (the default), and one static scale


def fp8_pages(num_blocks, block_size, heads, head_dim):
    cache = torch.zeros(num_blocks, block_size, heads, head_dim, dtype=fp8.FP8)
    return cache, torch.zeros(num_blocks, heads, block_size)


def empty_fp8_cache(num_blocks, block_size, heads, head_dim, fixed):
    k_cache, k_scales = fp8_pages(num_blocks, block_size, heads, head_dim)
    v_cache, v_scales = fp8_pages(num_blocks, block_size, heads, head_dim)
    return k_cache, v_cache, KVScales(k_scales, v_scales, fixed)


def quantize_cache(cache, fixed):
    """A float cache [blocks, block_size, H, D] as fp8 pages and head-major scales, by the torch path."""
    scales = fp8.row_scales(cache, fixed)
    return fp8.quantize(cache, scales), scales.transpose(1, 2).contiguous()


def dequantize_cache(cache, scales):
    return fp8.dequantize(cache, scales.transpose(1, 2), torch.float64)


# ---------------------------------------------------------------------------------------------------------
# Quantizing: the rounding, the stores
# ---------------------------------------------------------------------------------------------------------


@triton.jit
def _round_kernel(x_ptr, out_ptr, N: tl.constexpr):
    offs = tl.arange(0, N)
    tl.store(out_ptr + offs, round_to_e4m3(tl.load(x_ptr + offs)).to(out_ptr.dtype.element_ty))


def test_rounding_to_e4m3_matches_torch_on_every_value_and_every_tie():
    values = torch.arange(256, dtype=torch.uint8).view(fp8.FP8).float()
    values = values[values.isfinite() & (values.abs() <= fp8.FP8_MAX)].unique()
    ties = (values[1:] + values[:-1]) / 2  # halfway between neighbours: round to the even one
    gen = torch.Generator().manual_seed(0)
    random = (torch.rand(4096, generator=gen) * 2 - 1) * torch.exp2(torch.randint(-12, 9, (4096,), generator=gen))
    x = torch.cat([values, ties, random.clamp(-fp8.FP8_MAX, fp8.FP8_MAX)])
    x = torch.cat([x, torch.zeros(triton.next_power_of_2(len(x)) - len(x))])
    out = torch.empty(len(x), dtype=fp8.FP8)
    _round_kernel[(1,)](x, out, N=len(x))
    assert torch.equal(out.view(torch.uint8), x.to(fp8.FP8).view(torch.uint8))


@pytest.mark.parametrize("fixed", FIXED_SCALES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_triton_store_writes_the_torch_stores_bytes_and_scales(dtype, fixed):
    gen = torch.Generator().manual_seed(1)
    tokens, heads, head_dim, block_size, blocks = 9, 2, 16, 4, 5
    k = (torch.randn(tokens, heads, head_dim, generator=gen) * 40).to(dtype)
    v = (torch.randn(tokens, heads, head_dim, generator=gen) * 300).to(dtype)  # fixed 1.0 saturates these
    v[3, 1] = 0  # an all-zero row: scale 1, not 0/0
    slots = torch.tensor([0, 5, 6, 9, -1, 13, 2, 17, 19])  # -1: padding, never written
    written = []
    for store in ("torch", "triton"):
        k_cache, v_cache, scales = empty_fp8_cache(blocks + 1, block_size, heads, head_dim, fixed)
        if store == "torch":
            TorchKVStore(KVStoreOptions(), BuildContext()).write(k, v, k_cache, v_cache, slots, scales)
        else:
            store_kv_triton(k, v, k_cache, v_cache, slots, scales)
        written.append(
            [
                t[:blocks].view(torch.uint8) if t.dtype == fp8.FP8 else t[:blocks]
                for t in (k_cache, v_cache, scales.k, scales.v)
            ]
        )
    for ours, reference in zip(*written):
        assert torch.equal(ours, reference)


@pytest.mark.parametrize("fixed", FIXED_SCALES)
def test_round_trip_error_is_within_e4m3s_half_ulp(fixed):
    """Dequantized values differ from the originals by at most half an e4m3 ulp: 2**-4 relative for
    normal values, 2**-10 of the scale below 2**-6 (subnormals); with a fixed scale, values beyond
    448 * scale saturate there."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(64, 2, 32, generator=gen) * torch.exp2(torch.randint(-8, 9, (64, 2, 1), generator=gen).float())
    scales = fp8.row_scales(x, fixed)
    back = fp8.dequantize(fp8.quantize(x, scales), scales, torch.float32)
    limit = fixed * fp8.FP8_MAX if fixed else float("inf")
    target = x.clamp(-limit, limit)
    bound = torch.maximum(target.abs() * 2**-4, scales[..., None] * 2**-10)
    assert torch.all((back - target).abs() <= bound * (1 + 1e-6))
    if fixed:
        assert (x.abs() > limit).any() and torch.equal(back[x.abs() > limit].abs().unique(), torch.tensor([limit]))


@pytest.mark.parametrize("fixed", FIXED_SCALES)
def test_rope_kernels_fused_store_writes_the_stores_bytes(fixed):
    gen = torch.Generator().manual_seed(3)
    tokens, heads, kv_heads, head_dim, block_size = 5, 4, 2, 16, 4
    q = torch.randn(tokens, heads, head_dim, generator=gen)
    k = torch.randn(tokens, kv_heads, head_dim, generator=gen) * 3
    v = torch.randn(tokens, kv_heads, head_dim, generator=gen) * 30
    positions, weight = torch.arange(tokens), torch.rand(head_dim, generator=gen) + 0.5
    cos, sin = torch.randn(16, head_dim // 2, generator=gen), torch.randn(16, head_dim // 2, generator=gen)
    slots = torch.tensor([0, 5, 6, -1, 13])
    written = []
    for fused in (False, True):
        k_cache, v_cache, scales = empty_fp8_cache(5, block_size, kv_heads, head_dim, fixed)
        qq, kk = q.clone(), k.clone()
        target = KVTarget(v, k_cache, v_cache, slots, scales) if fused else None
        qk_norm_rope_triton(positions, qq, kk, weight, weight, 1e-6, cos, sin, target)
        if not fused:
            store_kv_triton(kk, v, k_cache, v_cache, slots, scales)
        written.append((k_cache.view(torch.uint8), v_cache.view(torch.uint8), scales.k, scales.v, qq, kk))
    for ours, reference in zip(*written):
        assert torch.equal(ours, reference)


def test_kernels_refuse_fp8_pages_without_scales_and_scales_without_fp8_pages():
    k = torch.randn(2, 2, 16)
    k_cache, v_cache, scales = empty_fp8_cache(2, 4, 2, 16, None)
    with pytest.raises(ValueError, match="needs its scales"):
        store_kv_triton(k, k, k_cache, v_cache, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="only fp8 caches"):
        store_kv_triton(k, k, k_cache.float(), v_cache.float(), torch.tensor([0, 1]), scales)
    tables, lens = torch.zeros(2, 1, dtype=torch.int32), torch.ones(2, dtype=torch.int32)
    with pytest.raises(ValueError, match="needs its scales"):
        paged_decode_attention(k, k_cache, v_cache, tables, lens, 1.0)


# ---------------------------------------------------------------------------------------------------------
# Attention over FP8 pages
# ---------------------------------------------------------------------------------------------------------

# Attention over FP8 pages vs attention over the original float K/V (unit-variance random K/V, softmax
# scale head_dim ** -0.5): the relative L2 error of each output row (sequence or query token, head), its
# largest and its mean allowed, per scaling mode. Measured on these cases: per (token, head) scales
# largest 0.044-0.069, mean 0.029-0.032; fixed scale 1.0 largest 0.052-0.096, mean 0.035-0.036 (more
# of its unit-variance values fall among e4m3's subnormals; it saturates only past 448, which
# test_round_trip_error_is_within_e4m3s_half_ulp covers).
DENSE_TOLERANCE = {None: (0.10, 0.045), 1.0: (0.14, 0.05)}


def assert_near_dense(out, dense, fixed):
    rows = dense.norm(dim=-1) > 0  # padding rows (context 0) are all zero on both sides
    error = (out.double() - dense).norm(dim=-1)[rows] / dense.norm(dim=-1)[rows]
    largest, mean = DENSE_TOLERANCE[fixed]
    assert error.max() <= largest and error.mean() <= mean, (error.max().item(), error.mean().item())


def fp8_case(context_lens, block_size, kv_heads, head_dim, fixed, seed):
    gen = torch.Generator().manual_seed(seed)
    k_float, v_float, tables = make_paged_cache(context_lens, block_size, kv_heads, head_dim, torch.float32, gen)
    (k_cache, k_scales), (v_cache, v_scales) = quantize_cache(k_float, fixed), quantize_cache(v_float, fixed)
    pages = {
        "fp8": (k_cache, v_cache, KVScales(k_scales, v_scales, fixed)),
        "dequantized": (dequantize_cache(k_cache, k_scales), dequantize_cache(v_cache, v_scales)),
        "float": (k_float, v_float),
    }
    return pages, tables, gen


def decode_reference(q, k_cache, v_cache, block_tables, context_lens, scale):
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b, length in enumerate(context_lens.tolist()):
        if length:
            k, v = gather_kv(k_cache, block_tables[b], length), gather_kv(v_cache, block_tables[b], length)
            out[b] = reference_attention(q[b : b + 1], k, v, scale, torch.tensor([length - 1]))[0]
    return out


@pytest.mark.parametrize("fixed", FIXED_SCALES)
@pytest.mark.parametrize("num_splits,block_n", [(1, None), (3, 16), (8, 32)])
def test_decode_over_fp8_pages(fixed, num_splits, block_n):
    context_lens, heads, kv_heads, head_dim = [1, 0, 37, 64, 150], 8, 2, 32
    pages, tables, gen = fp8_case(context_lens, 16, kv_heads, head_dim, fixed, seed=num_splits)
    q = torch.randn(len(context_lens), heads, head_dim, generator=gen)
    lens, scale = torch.tensor(context_lens, dtype=torch.int32), head_dim**-0.5
    k_cache, v_cache, scales = pages["fp8"]
    out = paged_decode_attention(q, k_cache, v_cache, tables, lens, scale, num_splits, block_n=block_n, scales=scales)
    assert_close(out, decode_reference(q, *pages["dequantized"], tables, lens, scale), atol=1e-4, rtol=1e-4)
    assert_near_dense(out, decode_reference(q, *pages["float"], tables, lens, scale), fixed)
    assert torch.all(out[1] == 0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_decode_over_fp8_pages_with_16_bit_queries(dtype):
    """16-bit queries take the float16 path (e4m3 widened to float16, V's scales lifted by 2**8): within
    float16 rounding of the dequantized pages, and as close to the dense float K/V as the float32 path."""
    context_lens, heads, kv_heads, head_dim = [1, 37, 64, 150], 8, 2, 32
    pages, tables, gen = fp8_case(context_lens, 16, kv_heads, head_dim, None, seed=5)
    q = torch.randn(len(context_lens), heads, head_dim, generator=gen).to(dtype)
    lens, scale = torch.tensor(context_lens, dtype=torch.int32), head_dim**-0.5
    k_cache, v_cache, scales = pages["fp8"]
    out = paged_decode_attention(q, k_cache, v_cache, tables, lens, scale, 3, block_n=16, scales=scales)
    assert out.dtype == dtype
    assert_close(out, decode_reference(q.float(), *pages["dequantized"], tables, lens, scale), atol=2e-2, rtol=2e-2)
    assert_near_dense(out, decode_reference(q.float(), *pages["float"], tables, lens, scale), None)


def prefill_reference(q, k_cache, v_cache, cu_seqlens, context_lens, block_tables, scale):
    out = torch.zeros(q.shape, dtype=torch.float64)
    for b in range(len(context_lens)):
        start, end, length = cu_seqlens[b].item(), cu_seqlens[b + 1].item(), context_lens[b].item()
        k, v = gather_kv(k_cache, block_tables[b], length), gather_kv(v_cache, block_tables[b], length)
        out[start:end] = reference_attention(q[start:end], k, v, scale, torch.arange(length - (end - start), length))
    return out


@pytest.mark.parametrize("fixed", FIXED_SCALES)
@pytest.mark.parametrize("block_size", [16, 32])
def test_prefill_over_fp8_pages(fixed, block_size):
    # fresh prompts, cached prefixes (context > q_len), a single-token query
    q_lens, context_lens, heads, kv_heads, head_dim = [37, 1, 16, 20], [37, 30, 50, 65], 4, 2, 32
    pages, tables, gen = fp8_case(context_lens, block_size, kv_heads, head_dim, fixed, seed=block_size)
    q = torch.randn(sum(q_lens), heads, head_dim, generator=gen)
    cu = torch.tensor([0, *q_lens]).cumsum(0).to(torch.int32)
    lens, scale = torch.tensor(context_lens, dtype=torch.int32), head_dim**-0.5
    k_cache, v_cache, scales = pages["fp8"]
    out = paged_prefill_attention(
        q, k_cache, v_cache, cu, lens, tables, max(q_lens), scale, block_m=16, block_n=16, scales=scales
    )
    assert_close(out, prefill_reference(q, *pages["dequantized"], cu, lens, tables, scale), atol=1e-4, rtol=1e-4)
    assert_near_dense(out, prefill_reference(q, *pages["float"], cu, lens, tables, scale), fixed)
