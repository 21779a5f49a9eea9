"""GPU tests of the FP8 KV cache in the compiled Triton kernels at realistic sizes (Qwen3-0.6B: 16 q
heads, 8 kv heads, head_dim 128, pages of 256 tokens): the stores write the torch path's pages, and
decode / prefill attention over FP8 pages match attention over the dequantized pages and, within the
stated tolerance, over the original bf16 values; the decode replays from a CUDA graph."""

import importlib

import pytest
import torch
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

from allmos.kv_store import fp8  # noqa: E402
from allmos.kv_store.base import KVScales, KVTarget  # noqa: E402

paged_decode_attention = importlib.import_module("allmos.attention.kernels.decode").paged_decode_attention
paged_prefill_attention = importlib.import_module("allmos.attention.kernels.prefill").paged_prefill_attention
store_kv_triton = importlib.import_module("allmos.kv_store.kernels.store").store_kv_triton
qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton

HEADS, KV_HEADS, HEAD_DIM, BLOCK_SIZE, DEVICE = 16, 8, 128, 256, "cuda"
FIXED_SCALES = [None, 1.0]
# Relative L2 error of each output row against attention over the original values (largest, mean):
# the interpreter's float32 figures (tests/kernels/fp8_interpreter_kernels.py) plus bf16 rounding.
DENSE_TOLERANCE = {None: (0.12, 0.05), 1.0: (0.16, 0.06)}


def torch_quantized(x, fixed):
    """x [tokens, H, D] -> (fp8 values, scales [tokens, H]) by the torch path."""
    scales = fp8.row_scales(x, fixed)
    return fp8.quantize(x, scales), scales


def assert_same_fp8(ours, reference):
    """Equal bytes, but for rare values one e4m3 step apart (the GPU's float32 division of x by its
    scale need not be correctly rounded, so a value on a rounding boundary may land either side)."""
    apart = ours.float() != reference.float()
    assert apart.float().mean() <= 1e-3
    step = reference.float().abs() * 2**-3 + 2**-9
    assert torch.all((ours.float() - reference.float()).abs()[apart] <= step[apart])


@pytest.mark.parametrize("fixed", FIXED_SCALES)
def test_store_and_fused_rope_store_write_the_torch_paths_pages(fixed):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    tokens, blocks = 700, 4
    k = torch.randn(tokens, KV_HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16() * 4
    v = torch.randn(tokens, KV_HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16() * 40
    slots = torch.randperm(blocks * BLOCK_SIZE, generator=gen, device=DEVICE)[:tokens]
    pages = lambda: torch.zeros(blocks, BLOCK_SIZE, KV_HEADS, HEAD_DIM, dtype=fp8.FP8, device=DEVICE)  # noqa: E731
    scale_pages = lambda: torch.zeros(blocks, KV_HEADS, BLOCK_SIZE, device=DEVICE)  # noqa: E731
    k_cache, v_cache, scales = pages(), pages(), KVScales(scale_pages(), scale_pages(), fixed)
    store_kv_triton(k, v, k_cache, v_cache, slots, scales)
    for x, cache, scale in ((k, k_cache, scales.k), (v, v_cache, scales.v)):
        values, row_scales = torch_quantized(x, fixed)
        assert_same_fp8(cache.flatten(0, 1)[slots], values)
        torch.testing.assert_close(scale.transpose(1, 2).flatten(0, 1)[slots], row_scales, rtol=1e-6, atol=0)
    # the rope kernel's fused store writes what the store writes after it
    q = torch.randn(tokens, HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    positions = torch.arange(tokens, device=DEVICE)
    cos, sin = torch.randn(2, tokens, HEAD_DIM // 2, generator=gen, device=DEVICE)
    weight = torch.ones(HEAD_DIM, device=DEVICE, dtype=torch.bfloat16)
    fused = pages(), pages(), KVScales(scale_pages(), scale_pages(), fixed)
    target = KVTarget(v, fused[0], fused[1], slots, fused[2])
    qk_norm_rope_triton(positions, q.clone(), kk := k.clone(), weight, weight, 1e-6, cos, sin, target)
    apart = pages(), pages(), KVScales(scale_pages(), scale_pages(), fixed)
    store_kv_triton(kk, v, apart[0], apart[1], slots, apart[2])
    assert torch.equal(fused[0].view(torch.uint8), apart[0].view(torch.uint8))
    assert torch.equal(fused[2].k, apart[2].k) and torch.equal(fused[2].v, apart[2].v)


def fp8_pages(context_lens, fixed, gen):
    """bf16 K/V in shuffled pages, their FP8 copies and scales (torch path), and the block tables."""
    blocks_per_seq = [-(-n // BLOCK_SIZE) for n in context_lens]
    num_blocks = sum(blocks_per_seq) + 2
    shape = (num_blocks, BLOCK_SIZE, KV_HEADS, HEAD_DIM)
    k, v = (torch.randn(shape, generator=gen, device=DEVICE).bfloat16() for _ in range(2))
    quantized = [torch_quantized(x, fixed) for x in (k, v)]
    (k8, ks), (v8, vs) = quantized
    scales = KVScales(ks.transpose(1, 2).contiguous(), vs.transpose(1, 2).contiguous(), fixed)
    dequantized = [fp8.dequantize(x, s, torch.float32) for x, s in quantized]
    physical = torch.randperm(num_blocks, generator=gen, device=DEVICE).to(torch.int32)
    tables = torch.zeros(len(context_lens), max(blocks_per_seq) + 1, dtype=torch.int32, device=DEVICE)
    start = 0
    for i, n in enumerate(blocks_per_seq):
        tables[i, :n] = physical[start : start + n]
        start += n
    return (k8, v8, scales), dequantized, (k.float(), v.float()), tables


def attention(q, k_cache, v_cache, table, length, q_positions, scale):
    pos = torch.arange(length, device=DEVICE)
    k = k_cache[table[pos // BLOCK_SIZE].long(), pos % BLOCK_SIZE].repeat_interleave(HEADS // KV_HEADS, 1)
    v = v_cache[table[pos // BLOCK_SIZE].long(), pos % BLOCK_SIZE].repeat_interleave(HEADS // KV_HEADS, 1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale
    scores = scores.masked_fill(pos[None, None, :] > q_positions[None, :, None], float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def assert_near(out, dequantized_ref, dense_ref, fixed):
    torch.testing.assert_close(out.float(), dequantized_ref, atol=2e-2, rtol=2e-2)
    error = (out.float() - dense_ref).norm(dim=-1) / dense_ref.norm(dim=-1)
    largest, mean = DENSE_TOLERANCE[fixed]
    assert error.max() <= largest and error.mean() <= mean, (error.max().item(), error.mean().item())


@pytest.mark.parametrize("fixed", FIXED_SCALES)
@pytest.mark.parametrize("batch", [1, 16, 64])
def test_decode_over_fp8_pages_eager_and_in_a_cuda_graph(fixed, batch):
    gen = torch.Generator(device=DEVICE).manual_seed(batch)
    lens = torch.randint(1, 2048, (batch,), generator=gen, device=DEVICE).to(torch.int32)
    (k8, v8, scales), dequantized, dense, tables = fp8_pages(lens.tolist(), fixed, gen)
    q = torch.randn(batch, HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    scale = HEAD_DIM**-0.5
    out = paged_decode_attention(q, k8, v8, tables, lens, scale, scales=scales)
    for b, n in enumerate(lens.tolist()):
        last = torch.tensor([n - 1], device=DEVICE)
        ref = attention(q[b : b + 1], *dequantized, tables[b], n, last, scale)
        assert_near(out[b : b + 1], ref, attention(q[b : b + 1], *dense, tables[b], n, last, scale), fixed)
    replayed = torch.empty_like(out)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        paged_decode_attention(q, k8, v8, tables, lens, scale, out=replayed, scales=scales)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        paged_decode_attention(q, k8, v8, tables, lens, scale, out=replayed, scales=scales)
    replayed.zero_()
    graph.replay()
    assert torch.equal(replayed, out)


@pytest.mark.parametrize("batch", [1, 64, 256])
def test_a_register_cap_changes_no_decoded_value(batch):
    """The FP8 decode's default cap of 168 registers (3 programs per SM instead of 2) only changes where the
    compiler keeps values: the same result as uncapped (attention.decode_max_registers=0), bit for bit."""
    gen = torch.Generator(device=DEVICE).manual_seed(batch)
    lens = torch.randint(1, 2048, (batch,), generator=gen, device=DEVICE).to(torch.int32)
    (k8, v8, scales), _, _, tables = fp8_pages(lens.tolist(), None, gen)
    q = torch.randn(batch, HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    free = paged_decode_attention(q, k8, v8, tables, lens, HEAD_DIM**-0.5, scales=scales, max_registers=0)
    capped = paged_decode_attention(q, k8, v8, tables, lens, HEAD_DIM**-0.5, scales=scales)
    assert torch.equal(capped, free)


@pytest.mark.parametrize("fp8", [True, False])
@pytest.mark.parametrize("batch", [1, 16, 64, 256])
@pytest.mark.parametrize("stages", [1, 3, 5, 6])
def test_the_pipeline_depth_changes_no_decoded_value(stages, batch, fp8):
    """The pipeline depth (attention.decode_kv_buffers picks it) only changes when the K/V tiles are copied: the
    same result as the default, bit for bit, on FP8 and on bf16 pages."""
    gen = torch.Generator(device=DEVICE).manual_seed(batch + stages)
    lens = torch.randint(1, 2048, (batch,), generator=gen, device=DEVICE).to(torch.int32)
    (k8, v8, scales), _, (k32, v32), tables = fp8_pages(lens.tolist(), None, gen)
    k, v, scales = (k8, v8, scales) if fp8 else (k32.bfloat16(), v32.bfloat16(), None)
    q = torch.randn(batch, HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    run = lambda **launch: paged_decode_attention(q, k, v, tables, lens, HEAD_DIM**-0.5, scales=scales, **launch)  # noqa: E731
    assert torch.equal(run(num_stages=stages), run())


@pytest.mark.parametrize("fixed", FIXED_SCALES)
def test_prefill_over_fp8_pages(fixed):
    gen = torch.Generator(device=DEVICE).manual_seed(7)
    q_lens, context_lens = [300, 1, 77], [300, 600, 333]  # fresh, a single token after a cached prefix, both
    (k8, v8, scales), dequantized, dense, tables = fp8_pages(context_lens, fixed, gen)
    q = torch.randn(sum(q_lens), HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    cu = torch.tensor([0, *q_lens], device=DEVICE).cumsum(0).to(torch.int32)
    lens, scale = torch.tensor(context_lens, dtype=torch.int32, device=DEVICE), HEAD_DIM**-0.5
    out = paged_prefill_attention(q, k8, v8, cu, lens, tables, max(q_lens), scale, scales=scales)
    for b, (n_q, n) in enumerate(zip(q_lens, context_lens)):
        rows, positions = slice(cu[b].item(), cu[b + 1].item()), torch.arange(n - n_q, n, device=DEVICE)
        ref = attention(q[rows], *dequantized, tables[b], n, positions, scale)
        assert_near(out[rows], ref, attention(q[rows], *dense, tables[b], n, positions, scale), fixed)


def dim_major(v_cache):
    """V's pages stored [num_blocks, H, D, block_size], viewed as [num_blocks, block_size, H, D]."""
    return v_cache.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)


@pytest.mark.parametrize("batch", [1, 16, 64, 256])
def test_dim_major_v_pages_change_no_decoded_value(batch):
    """V pages stored dim-major (the kernel reads their tiles whole, in wide loads) give the token-major
    pages' result bit for bit, eager and replayed from a CUDA graph."""
    gen = torch.Generator(device=DEVICE).manual_seed(batch)
    lens = torch.randint(1, 2048, (batch,), generator=gen, device=DEVICE).to(torch.int32)
    (k8, v8, scales), _, _, tables = fp8_pages(lens.tolist(), None, gen)
    q = torch.randn(batch, HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    want = paged_decode_attention(q, k8, v8, tables, lens, HEAD_DIM**-0.5, scales=scales)
    v_dm = dim_major(v8)
    assert torch.equal(paged_decode_attention(q, k8, v_dm, tables, lens, HEAD_DIM**-0.5, scales=scales), want)
    replayed = torch.empty_like(want)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        paged_decode_attention(q, k8, v_dm, tables, lens, HEAD_DIM**-0.5, out=replayed, scales=scales)
    graph.replay()
    assert torch.equal(replayed, want)


@pytest.mark.parametrize("batch", [1, 64])
def test_head_major_pages_change_no_decoded_value(batch):
    """K and V pages stored head-major, [num_blocks, H, block_size, D] (kernel_bench_fp8 --head-major), give the
    token-major pages' result bit for bit."""
    gen = torch.Generator(device=DEVICE).manual_seed(batch + 1)
    lens = torch.randint(1, 2048, (batch,), generator=gen, device=DEVICE).to(torch.int32)
    (k8, v8, scales), _, _, tables = fp8_pages(lens.tolist(), None, gen)
    q = torch.randn(batch, HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    want = paged_decode_attention(q, k8, v8, tables, lens, HEAD_DIM**-0.5, scales=scales)
    k_hm, v_hm = (c.transpose(1, 2).contiguous().transpose(1, 2) for c in (k8, v8))
    assert torch.equal(paged_decode_attention(q, k_hm, v_hm, tables, lens, HEAD_DIM**-0.5, scales=scales), want)


def test_dim_major_v_pages_change_no_prefilled_value():
    gen = torch.Generator(device=DEVICE).manual_seed(8)
    q_lens, context_lens = [300, 1, 77], [300, 600, 333]
    (k8, v8, scales), _, _, tables = fp8_pages(context_lens, None, gen)
    q = torch.randn(sum(q_lens), HEADS, HEAD_DIM, generator=gen, device=DEVICE).bfloat16()
    cu = torch.tensor([0, *q_lens], device=DEVICE).cumsum(0).to(torch.int32)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=DEVICE)
    run = lambda v: paged_prefill_attention(q, k8, v, cu, lens, tables, max(q_lens), HEAD_DIM**-0.5, scales=scales)  # noqa: E731
    assert torch.equal(run(dim_major(v8)), run(v8))
