"""GPU test of the decode kernel's own q/k norm, RoPE and K/V store (attention.fuse_rope) at Qwen3-0.6B's
sizes (16 q heads, 8 kv heads, head_dim 128, bf16, block size 256), mirroring
tests/kernels/decode_rope_interpreter_kernels.py (its own module: test_triton_kernels_gpu.py is near the
400-line limit). Layers of the chain it replaces (the rope kernel storing K/V, then the decode, both under
PDL) against layers of the fused decode under PDL: the caches bit for bit (with q/k norm, K within one bf16
ulp: the compiled reductions of the two kernels may sum a head's squares in another order), the outputs
within the decode tests' 1e-2, with and without q/k norm and the first-tile prefetch, contexts 1..2048 and a
padding row, eagerly and replayed from a CUDA graph."""

import importlib

import pytest
import torch
from paged_reference import POISON, make_paged_cache
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

from allmos.kv_store.base import KVTarget  # noqa: E402

_decode = importlib.import_module("allmos.attention.kernels.decode")
DecodeRope = importlib.import_module("allmos.attention.kernels.decode_rope").DecodeRope
decode_counters = importlib.import_module("allmos.attention.kernels.decode_merge").decode_counters
qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton
RotaryEmbedding = importlib.import_module("allmos.layers.rotary").RotaryEmbedding

HEADS, KV_HEADS, HEAD_DIM, BLOCK_SIZE, LAYERS = 16, 8, 128, 256, 3
EPS, SCALE, DEVICE = 1e-6, HEAD_DIM**-0.5, "cuda"
SPECIAL_CONTEXTS = [1, 2, 63, 64, 65, 777, 2048]


class Chain:
    """LAYERS decode steps' raw qkv over one paged cache whose newest rows hold poison."""

    def __init__(self, lens_list, with_norm, seed=5):
        gen = torch.Generator().manual_seed(seed)
        k_cache, v_cache, tables = make_paged_cache(lens_list, BLOCK_SIZE, KV_HEADS, HEAD_DIM, torch.bfloat16, gen)
        self.lens = torch.tensor(lens_list, dtype=torch.int32)
        newest = (self.lens - 1).clamp(min=0).long()
        pages = tables[torch.arange(len(lens_list)), newest // BLOCK_SIZE].long()
        slots = torch.where(self.lens > 0, pages * BLOCK_SIZE + newest % BLOCK_SIZE, -1)
        for cache in (k_cache, v_cache):
            cache.view(-1, KV_HEADS, HEAD_DIM)[slots[self.lens > 0]] = POISON
        self.base = [k_cache.to(DEVICE), v_cache.to(DEVICE)]
        self.pages = [t.clone() for t in self.base]
        self.tables, self.lens, self.positions, self.slots = (t.to(DEVICE) for t in (tables, self.lens, newest, slots))
        width = (HEADS + 2 * KV_HEADS) * HEAD_DIM
        self.qkv = (2 * torch.randn(LAYERS, len(lens_list), width, generator=gen)).to(torch.bfloat16).to(DEVICE)
        self.weights = (None, None)
        if with_norm:
            weights = (1 + 0.5 * torch.randn(2, HEAD_DIM, generator=gen)).to(torch.bfloat16).to(DEVICE)
            self.weights = tuple(weights)
        rotary = RotaryEmbedding(HEAD_DIM, 4096, 1e6, None, ops=None)
        self.cos, self.sin = rotary.cos.to(DEVICE), rotary.sin.to(DEVICE)
        self.counters = decode_counters(len(lens_list), KV_HEADS, DEVICE)

    def views(self, layer):
        qkv = self.qkv[layer].clone()
        q = qkv[:, : HEADS * HEAD_DIM].unflatten(1, (HEADS, HEAD_DIM))
        k, v = qkv[:, HEADS * HEAD_DIM :].unflatten(1, (2, KV_HEADS, HEAD_DIM)).unbind(1)
        return q, k, v

    def run(self, fused, prefetch_kv):
        """Every layer's attention [layers, batch, heads, D]; the caches as the last layer left them."""
        for page, base in zip(self.pages, self.base):
            page.copy_(base)
        k_cache, v_cache = self.pages
        kwargs = {"counters": self.counters, "pdl": True, "prefetch_kv": prefetch_kv}
        outs = []
        for layer in range(LAYERS):
            q, k, v = self.views(layer)
            args = (k_cache, v_cache, self.tables, self.lens, SCALE)
            if fused:
                rope = DecodeRope(k, v, self.positions, self.slots, *self.weights, EPS, self.cos, self.sin)
                outs.append(_decode.paged_decode_attention(q, *args, rope=rope, **kwargs))
            else:
                target = KVTarget(v, k_cache, v_cache, self.slots)
                qk_norm_rope_triton(self.positions, q, k, *self.weights, EPS, self.cos, self.sin, target, pdl=True)
                outs.append(_decode.paged_decode_attention(q, *args, **kwargs))
        return torch.stack(outs)


def capture(step) -> torch.cuda.CUDAGraph:
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        step()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        step()
    return graph


@pytest.mark.parametrize("prefetch_kv", [True, False], ids=["prefetch", "no_prefetch"])
@pytest.mark.parametrize("with_norm", [True, False], ids=["qk_norm", "rope_only"])
@pytest.mark.parametrize("batch", [1, 16, 64])
def test_the_fused_decode_matches_the_rope_kernel_then_the_decode(batch, with_norm, prefetch_kv):
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    if batch == 1:
        cases = [[n] for n in SPECIAL_CONTEXTS]
    else:
        lens_list = torch.randint(1, 2049, (batch,), generator=torch.Generator().manual_seed(batch)).tolist()
        cases = [SPECIAL_CONTEXTS + [0] + lens_list[len(SPECIAL_CONTEXTS) + 1 :]]
    for lens_list in cases:
        check_case(Chain(lens_list, with_norm), prefetch_kv)


def check_case(chain, prefetch_kv):
    expected = chain.run(fused=False, prefetch_kv=prefetch_kv)
    expected_pages = [t.clone() for t in chain.pages]
    ours = chain.run(fused=True, prefetch_kv=prefetch_kv)
    lens_list = chain.lens.tolist()
    (k_cache, v_cache), (k_expected, v_expected) = chain.pages, expected_pages
    assert torch.equal(v_cache, v_expected), lens_list
    if chain.weights[0] is None:  # elementwise only: the same bits
        assert torch.equal(k_cache, k_expected), lens_list
    else:  # a head's sum of squares may add up in another order over another layout: one bf16 ulp
        torch.testing.assert_close(k_cache, k_expected, atol=0, rtol=2**-7)
    torch.testing.assert_close(ours.float(), expected.float(), atol=1e-2, rtol=1e-2)
    assert torch.all(ours[:, chain.lens == 0] == 0) and torch.all(chain.counters == 0)

    graph_out = []
    graph = capture(lambda: graph_out.append(chain.run(fused=True, prefetch_kv=prefetch_kv)))
    graph.replay()
    torch.cuda.synchronize()
    assert torch.equal(graph_out[-1], ours), lens_list
