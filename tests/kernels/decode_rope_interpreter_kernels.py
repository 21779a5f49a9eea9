"""CPU tests of the decode kernel's own q/k norm, RoPE and K/V store (attention.fuse_rope, the FUSE_ROPE
constexpr; allmos/attention/kernels/decode_rope.py) through the Triton interpreter (see
triton_interpreter_kernels.py for why these modules run in their own process).

The fused decode is held to the chain it replaces on the same inputs: the rope kernel normalizing and
rotating q and k and storing k, v into the cache (qk_norm_rope_triton with a KVTarget), then the decode
attention. The caches must come out bit for bit equal (the newest rows as the rope kernel stores them,
nothing else touched, nothing for a padding row), the outputs within the decode's tolerance, with and
without q/k norm, over contexts that put the newest token first, inside and last in a tile, with one and
several splits (both combines), with and without the first-tile prefetch. The newest rows are poisoned
before, so a read of them from the cache shows."""

import importlib

import pytest
import torch
from paged_reference import POISON, assert_close, make_paged_cache
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_triton_kernels_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

from allmos.kv_store.base import KVScales, KVTarget  # noqa: E402

decode = importlib.import_module("allmos.attention.kernels.decode")
DecodeRope = importlib.import_module("allmos.attention.kernels.decode_rope").DecodeRope
decode_counters = importlib.import_module("allmos.attention.kernels.decode_merge").decode_counters
prefetches_first_tile = importlib.import_module("allmos.attention.kernels.decode_prefetch").prefetches_first_tile
qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton
RotaryEmbedding = importlib.import_module("allmos.layers.rotary").RotaryEmbedding

HEADS, KV_HEADS, HEAD_DIM, BLOCK_SIZE = 4, 2, 32, 16
MAX_POSITIONS, EPS, SCALE = 512, 1e-6, HEAD_DIM**-0.5
# 0: a CUDA-graph padding row (slot -1); the newest token first, inside and last in a 64-token tile
CONTEXTS = [1, 2, 63, 0, 64, 65, 300]
TOLERANCE = {torch.float32: 1e-5, torch.float16: 2e-3}


class Step:
    """One decode step: a paged cache holding every token but each sequence's newest (whose rows hold
    poison), the raw qkv projection output of the new tokens, their positions and slots."""

    def __init__(self, contexts, dtype, with_norm, seed=0):
        gen = torch.Generator().manual_seed(seed)
        self.k_cache, self.v_cache, self.tables = make_paged_cache(contexts, BLOCK_SIZE, KV_HEADS, HEAD_DIM, dtype, gen)
        self.lens = torch.tensor(contexts, dtype=torch.int32)
        newest = (self.lens - 1).clamp(min=0).long()
        pages = self.tables[torch.arange(len(contexts)), newest // BLOCK_SIZE].long()
        self.slots = torch.where(self.lens > 0, pages * BLOCK_SIZE + newest % BLOCK_SIZE, -1)
        for cache in (self.k_cache, self.v_cache):
            cache.view(-1, KV_HEADS, HEAD_DIM)[self.slots[self.lens > 0]] = POISON
        self.positions = newest
        width = (HEADS + 2 * KV_HEADS) * HEAD_DIM
        self.qkv = (2 * torch.randn(len(contexts), width, generator=gen)).to(dtype)
        self.weights = (None, None)
        if with_norm:
            self.weights = tuple((1 + 0.5 * torch.randn(HEAD_DIM, generator=gen)).to(dtype) for _ in range(2))
        rotary = RotaryEmbedding(HEAD_DIM, MAX_POSITIONS, 1e6, None, ops=None)
        self.cos, self.sin = rotary.cos, rotary.sin

    def views(self):
        """(qkv, q, k, v, k_cache, v_cache): fresh copies, as each run writes into them."""
        qkv, batch = self.qkv.clone(), self.qkv.shape[0]
        q = qkv[:, : HEADS * HEAD_DIM].view(batch, HEADS, HEAD_DIM)
        k = qkv[:, HEADS * HEAD_DIM : (HEADS + KV_HEADS) * HEAD_DIM].view(batch, KV_HEADS, HEAD_DIM)
        v = qkv[:, (HEADS + KV_HEADS) * HEAD_DIM :].view(batch, KV_HEADS, HEAD_DIM)
        return qkv, q, k, v, self.k_cache.clone(), self.v_cache.clone()

    def chain(self, **kwargs):
        """The rope kernel storing K/V, then the decode: (out, k_cache, v_cache)."""
        _, q, k, v, k_cache, v_cache = self.views()
        target = KVTarget(v, k_cache, v_cache, self.slots)
        qk_norm_rope_triton(self.positions, q, k, *self.weights, EPS, self.cos, self.sin, target)
        out = decode.paged_decode_attention(q, k_cache, v_cache, self.tables, self.lens, SCALE, **kwargs)
        return out, k_cache, v_cache

    def fused(self, **kwargs):
        """The decode with the rope and the store inside: (out, k_cache, v_cache, qkv afterwards)."""
        qkv, q, k, v, k_cache, v_cache = self.views()
        rope = self.rope(k, v)
        out = decode.paged_decode_attention(q, k_cache, v_cache, self.tables, self.lens, SCALE, rope=rope, **kwargs)
        return out, k_cache, v_cache, qkv

    def rope(self, k, v):
        return DecodeRope(k, v, self.positions, self.slots, *self.weights, EPS, self.cos, self.sin)


# (num_splits, block_n, fused_combine, prefetch_kv): one split, several (8 over 16-token tiles: some empty)
# with either combine, with and without the first-tile prefetch
LAUNCHES = [(1, 64, True, True), (1, 64, True, False), (3, 16, True, True), (3, 16, False, False), (8, 16, True, False)]


@pytest.mark.parametrize("with_norm", [True, False], ids=["qk_norm", "rope_only"])
@pytest.mark.parametrize("num_splits,block_n,fused_combine,prefetch_kv", LAUNCHES)
def test_the_fused_decode_matches_the_rope_kernel_then_the_decode(
    num_splits, block_n, fused_combine, prefetch_kv, with_norm
):
    dtype = torch.float32 if num_splits == 3 else torch.float16
    step = Step(CONTEXTS, dtype, with_norm, seed=num_splits + block_n)
    programs = KV_HEADS * len(CONTEXTS) * num_splits
    assert prefetches_first_tile(prefetch_kv, programs, block_n, 132) == prefetch_kv
    counters = decode_counters(len(CONTEXTS), KV_HEADS, "cpu") if fused_combine else None
    kwargs = dict(num_splits=num_splits, block_n=block_n, fused_combine=fused_combine, prefetch_kv=prefetch_kv)
    expected, k_expected, v_expected = step.chain(**kwargs)
    ours, k_cache, v_cache, qkv = step.fused(counters=counters, **kwargs)

    assert torch.equal(k_cache, k_expected) and torch.equal(v_cache, v_expected)
    assert_close(ours, expected, atol=TOLERANCE[dtype], rtol=TOLERANCE[dtype])
    assert torch.all(ours[CONTEXTS.index(0)] == 0)
    assert torch.equal(qkv, step.qkv)  # q, k, v stay raw: nothing rotates them in place
    if fused_combine and num_splits > 1:
        assert torch.all(counters == 0)


def test_a_padding_slot_is_attended_but_not_stored():
    """A sequence whose slot is -1 attends to its newest token from registers and stores nothing."""
    step = Step([40, 5], torch.float32, with_norm=True, seed=3)
    expected, k_expected, v_expected = step.chain(num_splits=2, block_n=16)
    newest = step.positions[0]
    row = (step.tables[0, newest // BLOCK_SIZE].long(), newest % BLOCK_SIZE)
    step.slots[0] = -1
    ours, k_cache, v_cache, _ = step.fused(num_splits=2, block_n=16)
    k_expected[row] = v_expected[row] = POISON  # what the row held before
    assert torch.equal(k_cache, k_expected) and torch.equal(v_cache, v_expected)
    assert_close(ours, expected, atol=1e-5, rtol=1e-5)


def test_the_fused_decode_refuses_what_it_cannot_store():
    step = Step([3], torch.float32, with_norm=False)
    _, q, k, v, k_cache, v_cache = step.views()
    fp8_pages = k_cache.to(torch.float8_e4m3fn), v_cache.to(torch.float8_e4m3fn)
    scales = torch.ones(k_cache.shape[0], KV_HEADS, BLOCK_SIZE)
    with pytest.raises(ValueError, match="cache of q's dtype"):
        decode.paged_decode_attention(
            q, *fp8_pages, step.tables, step.lens, SCALE, rope=step.rope(k, v), scales=KVScales(scales, scales)
        )
    with pytest.raises(ValueError, match="rope.v must be"):
        decode.paged_decode_attention(q, k_cache, v_cache, step.tables, step.lens, SCALE, rope=step.rope(k, v[:, :1]))
