"""GPU tests of the Triton kernels at realistic sizes (Qwen3-0.6B: 16 q heads, 8 kv heads, head_dim 128).

Skipped without CUDA, and when TRITON_INTERPRET=1 is set (the kernels would run in the interpreter; the
CPU test module sets it, but only on machines without CUDA or where it was already set).
"""

import importlib

import pytest
import torch
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

_decode = importlib.import_module("allmos.attention.kernels.decode")
decode_counters = importlib.import_module("allmos.attention.kernels.decode_merge").decode_counters
prefetches_first_tile = importlib.import_module("allmos.attention.kernels.decode_prefetch").prefetches_first_tile
qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton
default_num_splits = _decode.default_num_splits
paged_decode_attention = _decode.paged_decode_attention
paged_prefill_attention = importlib.import_module("allmos.attention.kernels.prefill").paged_prefill_attention
store_kv_triton = importlib.import_module("allmos.kv_store.kernels.store").store_kv_triton

NUM_HEADS, NUM_KV_HEADS, HEAD_DIM = 16, 8, 128
DEVICE = "cuda"
DTYPES = [torch.bfloat16, torch.float16]


def capture(step) -> torch.cuda.CUDAGraph:
    """A CUDA graph of step(), warmed up once on a side stream first (compiles stay outside the capture)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


def make_cache(context_lens, block_size, dtype, gen, extra_cols=3):
    """Shuffled paged caches; unused block-table entries are random valid blocks (never read)."""
    blocks_per_seq = [-(-n // block_size) for n in context_lens]
    num_blocks = max(sum(blocks_per_seq), 1) + 4
    shape = (num_blocks, block_size, NUM_KV_HEADS, HEAD_DIM)
    k_cache = torch.randn(shape, generator=gen, device=DEVICE).to(dtype)
    v_cache = torch.randn(shape, generator=gen, device=DEVICE).to(dtype)
    width = max(blocks_per_seq) + extra_cols
    block_tables = torch.randint(0, num_blocks, (len(context_lens), width), generator=gen, device=DEVICE)
    physical = torch.randperm(num_blocks, generator=gen, device=DEVICE)
    start = 0
    for i, n in enumerate(blocks_per_seq):
        block_tables[i, :n] = physical[start : start + n]
        start += n
    return k_cache, v_cache, block_tables.to(torch.int32)


def gather(cache, block_table, length):
    pos = torch.arange(length, device=DEVICE)
    return cache[block_table[pos // cache.shape[1]].long(), pos % cache.shape[1]].float()


def dense_attention(q, k, v, scale, q_positions):
    """float32 reference. q [Lq, Hq, D]; k, v [Lk, Hkv, D]; query i sees keys <= q_positions[i]."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.float(), k) * scale
    visible = torch.arange(k.shape[0], device=DEVICE)[None, :] <= q_positions[:, None]
    scores = scores.masked_fill(~visible[None], float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


@pytest.mark.parametrize("dtype", DTYPES)
def test_store_kv_gpu(dtype):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    num_tokens, num_blocks, block_size = 333, 64, 16
    qkv = torch.randn(num_tokens, NUM_HEADS + 2 * NUM_KV_HEADS, HEAD_DIM, generator=gen, device=DEVICE)
    qkv = qkv.to(dtype)
    k, v = qkv[:, NUM_HEADS : NUM_HEADS + NUM_KV_HEADS], qkv[:, NUM_HEADS + NUM_KV_HEADS :]
    slots = torch.randperm(num_blocks * block_size, generator=gen, device=DEVICE)[:num_tokens]
    slots[::7] = -1
    shape = (num_blocks, block_size, NUM_KV_HEADS, HEAD_DIM)
    k_cache = torch.full(shape, -7.0, dtype=dtype, device=DEVICE)
    v_cache = torch.full(shape, -7.0, dtype=dtype, device=DEVICE)
    expected_k, expected_v = k_cache.clone(), v_cache.clone()
    keep = slots >= 0
    expected_k.view(-1, NUM_KV_HEADS, HEAD_DIM)[slots[keep]] = k[keep]
    expected_v.view(-1, NUM_KV_HEADS, HEAD_DIM)[slots[keep]] = v[keep]

    store_kv_triton(k, v, k_cache, v_cache, slots.to(torch.int32))
    assert torch.equal(k_cache, expected_k)
    assert torch.equal(v_cache, expected_v)


def decode_case(batch, block_size, dtype, num_splits, seed=0, max_context=2048):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    context_lens = torch.randint(1, max_context + 1, (batch,), generator=torch.Generator().manual_seed(seed))
    context_lens = context_lens.tolist()
    context_lens[0] = max_context
    if batch > 2:
        context_lens[1], context_lens[2] = 0, 1
    k_cache, v_cache, block_tables = make_cache(context_lens, block_size, dtype, gen)
    q = torch.randn(batch, NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(dtype)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=DEVICE)
    scale = HEAD_DIM**-0.5
    out = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, scale, num_splits=num_splits)

    ref = torch.zeros(q.shape, dtype=torch.float32, device=DEVICE)
    for b, n in enumerate(context_lens):
        if n:
            k, v = gather(k_cache, block_tables[b], n), gather(v_cache, block_tables[b], n)
            ref[b] = dense_attention(q[b : b + 1], k, v, scale, torch.tensor([n - 1], device=DEVICE))[0]
    return out, ref


@pytest.mark.parametrize("num_splits", [None, 1, 7])
@pytest.mark.parametrize("block_size", [16, 64, 256])
@pytest.mark.parametrize("dtype", DTYPES)
def test_decode_gpu(dtype, block_size, num_splits):
    out, ref = decode_case(64, block_size, dtype, num_splits)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("block_n", [16, 32, 128])
def test_decode_gpu_tile_sizes(block_n):
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    lens_list = [700, 1, 2048, 33]
    k_cache, v_cache, block_tables = make_cache(lens_list, 64, torch.bfloat16, gen)
    q = torch.randn(4, NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(torch.bfloat16)
    lens = torch.tensor(lens_list, dtype=torch.int32, device=DEVICE)
    expected = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.1, num_splits=1, block_n=64)
    for splits in (1, 5):
        out = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.1, num_splits=splits, block_n=block_n)
        torch.testing.assert_close(out.float(), expected.float(), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("longest_first", [False, True])
def test_decode_cuda_graph_capture(longest_first):
    """The wrapper must be capturable and replay correctly after context_lens / q change in place
    (with longest_first, the sort of the sequences by context length is captured too)."""
    gen = torch.Generator(device=DEVICE).manual_seed(2)
    k_cache, v_cache, block_tables = make_cache([512] * 8, 16, torch.bfloat16, gen)
    q = torch.randn(8, NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(torch.bfloat16)
    lens = torch.full((8,), 100, dtype=torch.int32, device=DEVICE)
    out = torch.empty_like(q)

    def step():
        order = torch.argsort(lens, descending=True) if longest_first else None
        paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.1, out=out, seq_order=order)

    graph = capture(step)

    lens.copy_(torch.tensor([512, 0, 1, 300, 17, 512, 64, 65], dtype=torch.int32))
    q.copy_(torch.randn(q.shape, generator=gen, device=DEVICE))
    graph.replay()
    expected = paged_decode_attention(q, k_cache, v_cache, block_tables, lens, 0.1)
    torch.testing.assert_close(out, expected, atol=0, rtol=0)
    assert torch.all(out[1] == 0)


def decode_reference(q, k_cache, v_cache, block_tables, context_lens, scale):
    ref = torch.zeros(q.shape, dtype=torch.float32, device=DEVICE)
    for b, n in enumerate(context_lens):
        if n:
            k, v = gather(k_cache, block_tables[b], n), gather(v_cache, block_tables[b], n)
            ref[b] = dense_attention(q[b : b + 1], k, v, scale, torch.tensor([n - 1], device=DEVICE))[0]
    return ref


@pytest.mark.parametrize("num_splits", [2, 7, 32])
def test_decode_fused_combine_matches_the_two_kernel_combine(num_splits):
    gen = torch.Generator(device=DEVICE).manual_seed(5)
    lens_list = [4096, 0, 1, 63, 64, 65, 500, 3000]
    k_cache, v_cache, block_tables = make_cache(lens_list, 256, torch.bfloat16, gen)
    q = torch.randn(len(lens_list), NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(torch.bfloat16)
    lens = torch.tensor(lens_list, dtype=torch.int32, device=DEVICE)
    counters = decode_counters(len(lens_list), NUM_KV_HEADS, DEVICE)
    args = (q, k_cache, v_cache, block_tables, lens, 0.1, num_splits)
    fused = paged_decode_attention(*args, counters=counters)
    two_kernels = paged_decode_attention(*args, fused_combine=False)
    torch.testing.assert_close(fused.float(), two_kernels.float(), atol=1e-2, rtol=1e-2)
    expected = decode_reference(q, k_cache, v_cache, block_tables, lens_list, 0.1)
    torch.testing.assert_close(fused.float(), expected, atol=1e-2, rtol=1e-2)
    assert torch.all(counters == 0)


@pytest.mark.parametrize("batch", [1, 16])
def test_decode_fused_combine_cuda_graph_replays(batch):
    """A captured step of several layer calls sharing one counters buffer, replayed with other context
    lengths each time: every replay matches the reference and leaves the counters zeroed (nothing in
    the graph re-zeroes them; the merging programs do)."""
    max_context, layers, scale = 4096, 3, HEAD_DIM**-0.5
    assert default_num_splits(batch, NUM_KV_HEADS, max_context) > 1  # the fused path is the one captured
    gen = torch.Generator(device=DEVICE).manual_seed(6)
    k_cache, v_cache, block_tables = make_cache([max_context] * batch, 256, torch.bfloat16, gen)
    q = torch.randn(batch, NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(torch.bfloat16)
    lens = torch.full((batch,), 100, dtype=torch.int32, device=DEVICE)
    outs = [torch.empty_like(q) for _ in range(layers)]
    counters = decode_counters(batch, NUM_KV_HEADS, DEVICE)

    def step():
        for layer, out in enumerate(outs):
            layer_q = q * (layer + 1)  # a different query per layer
            paged_decode_attention(layer_q, k_cache, v_cache, block_tables, lens, scale, out=out, counters=counters)

    graph = capture(step)

    lengths = torch.Generator().manual_seed(batch)
    for replay in range(6):
        lens_list = torch.randint(0, max_context + 1, (batch,), generator=lengths).tolist()
        lens_list[0] = [1, 0, 64, 65, 500, max_context][replay]
        lens.copy_(torch.tensor(lens_list, dtype=torch.int32))
        graph.replay()
        torch.cuda.synchronize()
        assert torch.all(counters == 0), f"replay {replay} left counters set"
        for layer, out in enumerate(outs):
            layer_q = q * (layer + 1)
            expected = decode_reference(layer_q, k_cache, v_cache, block_tables, lens_list, scale)
            torch.testing.assert_close(out.float(), expected, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("block_size", [16, 64, 256])
@pytest.mark.parametrize("dtype", DTYPES)
def test_prefill_gpu(dtype, block_size):
    gen = torch.Generator(device=DEVICE).manual_seed(3)
    # (q_len, context_len): fresh prompts, cached prefixes, chunked continuation, single-token rows.
    seqs = [(1000, 1000), (1, 1), (300, 2048), (129, 129), (1, 777), (64, 1500), (513, 600)]
    q_lens = [s[0] for s in seqs]
    context_lens = [s[1] for s in seqs]
    k_cache, v_cache, block_tables = make_cache(context_lens, block_size, dtype, gen)
    q = torch.randn(sum(q_lens), NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(dtype)
    cu = torch.tensor([0] + q_lens, device=DEVICE).cumsum(0).to(torch.int32)
    lens = torch.tensor(context_lens, dtype=torch.int32, device=DEVICE)
    scale = HEAD_DIM**-0.5

    out = paged_prefill_attention(q, k_cache, v_cache, cu, lens, block_tables, max(q_lens), scale)
    assert out.dtype == dtype
    for b, (q_len, n) in enumerate(seqs):
        rows = slice(cu[b].item(), cu[b + 1].item())
        k, v = gather(k_cache, block_tables[b], n), gather(v_cache, block_tables[b], n)
        ref = dense_attention(q[rows], k, v, scale, torch.arange(n - q_len, n, device=DEVICE))
        torch.testing.assert_close(out[rows].float(), ref, atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("batch", [1, 16])
def test_decode_with_pdl_computes_what_the_plain_launch_does(batch):
    """Programmatic dependent launch (sm_90+) changes when the decode kernel starts, not what it reads:
    a chain of layers, each one's query computed by a kernel from the previous layer's output, gives bit
    for bit the plain launches' result, eagerly and replayed from a CUDA graph."""
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    gen = torch.Generator(device=DEVICE).manual_seed(7)
    lens_list = ([4096, 1, 65, 500] * 4)[:batch]
    k_cache, v_cache, block_tables = make_cache(lens_list, 256, torch.bfloat16, gen)
    q = torch.randn(batch, NUM_HEADS, HEAD_DIM, generator=gen, device=DEVICE).to(torch.bfloat16)
    lens = torch.tensor(lens_list, dtype=torch.int32, device=DEVICE)
    counters = decode_counters(batch, NUM_KV_HEADS, DEVICE)

    def layers(pdl):
        x = q
        for _ in range(4):
            x = paged_decode_attention(x * 2, k_cache, v_cache, block_tables, lens, 0.1, counters=counters, pdl=pdl)
        return x

    expected = layers(pdl=False)
    assert torch.equal(layers(pdl=True), expected)
    graph_out = []
    graph = capture(lambda: graph_out.append(layers(pdl=True)))
    for seed in range(3):
        q.copy_(torch.randn(q.shape, generator=gen, device=DEVICE).to(torch.bfloat16))
        graph.replay()
        expected = layers(pdl=False)
        torch.cuda.synchronize()
        assert torch.equal(graph_out[-1], expected), f"replay {seed} differs"
    assert torch.all(counters == 0)


class RopeDecodeChain:
    """Layers of a PDL-launched rope kernel writing each sequence's newest K/V (its fused store) right
    before a PDL-launched decode reading it; every run starts from the same cache (bf16 or FP8 pages)."""

    def __init__(self, lens_list, fp8, layers=3, seed=12):
        from allmos.kv_store import fp8 as quant
        from allmos.kv_store.base import KVScales

        gen = torch.Generator(device=DEVICE).manual_seed(seed)
        k_cache, v_cache, self.tables = make_cache(lens_list, 256, torch.bfloat16, gen)
        self.base = [k_cache, v_cache]  # and with FP8 the pages' scales, head-major
        if fp8:
            row_scales = [quant.row_scales(cache, None) for cache in self.base]
            self.base = [quant.quantize(cache, s) for cache, s in zip(self.base, row_scales)]
            self.base += [s.transpose(1, 2).contiguous() for s in row_scales]
        self.pages = [t.clone() for t in self.base]
        self.scales = KVScales(self.pages[2], self.pages[3], None) if fp8 else None
        self.lens_list, batch = lens_list, len(lens_list)
        self.lens = torch.tensor(lens_list, dtype=torch.int32, device=DEVICE)
        self.positions = (self.lens.long() - 1).clamp(min=0)
        pages = self.tables[torch.arange(batch, device=DEVICE), self.positions // 256].long()
        self.slots = torch.where(self.lens > 0, pages * 256 + self.positions % 256, -1)
        self.cos, self.sin = (torch.randn(2048, HEAD_DIM // 2, generator=gen, device=DEVICE) for _ in range(2))
        shapes = ((NUM_HEADS,), (NUM_KV_HEADS,), (NUM_KV_HEADS,))
        self.q, self.k, self.v = (
            torch.randn(layers, batch, *heads, HEAD_DIM, generator=gen, device=DEVICE).to(torch.bfloat16)
            for heads in shapes
        )
        self.counters = decode_counters(batch, NUM_KV_HEADS, DEVICE)

    def run(self, prefetch_kv, num_splits):
        """(the last layer's rotated q, every layer's attention [layers, batch, heads, D])."""
        from allmos.kv_store.base import KVTarget

        for page, base in zip(self.pages, self.base):
            page.copy_(base)
        k_cache, v_cache = self.pages[:2]
        outs = []
        for layer in range(len(self.q)):
            q, k = self.q[layer].clone(), self.k[layer].clone()
            target = KVTarget(self.v[layer], k_cache, v_cache, self.slots, self.scales)
            qk_norm_rope_triton(self.positions, q, k, None, None, 1e-6, self.cos, self.sin, target, pdl=True)
            args = (q, k_cache, v_cache, self.tables, self.lens, HEAD_DIM**-0.5, num_splits)
            kwargs = {"counters": self.counters, "pdl": True, "scales": self.scales, "prefetch_kv": prefetch_kv}
            outs.append(paged_decode_attention(*args, **kwargs))
        return q, torch.stack(outs)

    def reference(self, q):
        """float32 attention of q over the cache as the last store left it (FP8 pages dequantized)."""
        k_cache, v_cache = (page.float() for page in self.pages[:2])
        if self.scales is not None:
            k_cache = k_cache * self.scales.k.transpose(1, 2)[..., None]
            v_cache = v_cache * self.scales.v.transpose(1, 2)[..., None]
        return decode_reference(q, k_cache, v_cache, self.tables, self.lens_list, HEAD_DIM**-0.5)


# (batch, num_splits, whether the launch prefetches): batch 16 with its default 4 splits is 512 programs,
# too many to prefetch (the two runs are then the same kernel); with 3 splits it prefetches.
PREFETCH_LAUNCHES = [(1, None, True), (16, 3, True), (16, None, False), (64, None, False)]
SPECIAL_CONTEXTS = [1, 2, 63, 64, 65, 777, 2048]  # batch 1 runs each; the larger batches hold them all


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16", "fp8"])
@pytest.mark.parametrize("batch,num_splits,prefetches", PREFETCH_LAUNCHES)
def test_decode_prefetch_under_pdl_computes_what_the_plain_kernel_does(batch, num_splits, prefetches, fp8):
    """The first-tile prefetch (prefetch_kv) changes when the tile is read, not what: the rope-and-decode
    chain gives bit for bit its result without the prefetch (contexts 1..2048, a padding row of context 0),
    eagerly and replayed from a CUDA graph, and matches a float32 reference over the cache the last store
    left (within the decode tests' 1e-2, FP8's 2e-2)."""
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    if batch == 1:
        cases = [[n] for n in SPECIAL_CONTEXTS]
    else:
        lens_list = torch.randint(1, 2049, (batch,), generator=torch.Generator().manual_seed(batch)).tolist()
        cases = [SPECIAL_CONTEXTS + [0] + lens_list[len(SPECIAL_CONTEXTS) + 1 :]]
    for lens_list in cases:
        check_prefetch_chain(RopeDecodeChain(lens_list, fp8), num_splits, prefetches)


def check_prefetch_chain(chain, num_splits, prefetches):
    batch = len(chain.lens_list)
    splits = num_splits or default_num_splits(batch, NUM_KV_HEADS, chain.tables.shape[1] * 256)
    block_n = _decode.default_block_n(batch, NUM_KV_HEADS)
    num_sms = _decode._num_sms(torch.device(DEVICE))
    assert prefetches_first_tile(True, batch * NUM_KV_HEADS * splits, block_n, num_sms) == prefetches

    _, expected = chain.run(prefetch_kv=False, num_splits=num_splits)
    q, ours = chain.run(prefetch_kv=True, num_splits=num_splits)
    assert torch.equal(ours, expected), (chain.lens_list, (ours.float() - expected.float()).abs().max().item())
    tolerance = 2e-2 if chain.scales is not None else 1e-2
    torch.testing.assert_close(ours[-1].float(), chain.reference(q), atol=tolerance, rtol=tolerance)
    assert torch.all(ours[:, chain.lens == 0] == 0) and torch.all(chain.counters == 0)

    graph_out = []
    graph = capture(lambda: graph_out.append(chain.run(prefetch_kv=True, num_splits=num_splits)[1]))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(graph_out[-1], expected), chain.lens_list
