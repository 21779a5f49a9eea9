"""The attention phase of the persistent batch-1 layers probe (allmos.microbench.persistent_layers), and its
torch reference.

Between the qkv and o phases, the programs split the work by (kv head, split of the context): each takes the
new token's q heads of its group and its k and v from the qkv row, applies the q/k RMSNorm and RoPE (the same
bits as the rope kernel: allmos.triton_shared.rope), and runs an online softmax over its split's cached
tokens, the newest one taken from registers. The split holding the newest position also stores its K/V in
the paged cache for later steps. Each split writes its (max, sum, output) partial; the last of a head's splits
to finish (an atomic count per kv head) merges them into the head's rows of the attention output and resets
the count, so the o phase after the barrier reads finished rows.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.layers import ops
from allmos.triton_shared.l2_prefetch import prefetch_to_l2
from allmos.triton_shared.rope import norm_rope, rope_cos_sin


@triton.jit
def _dot_halves(q1, q2, k1, k2):
    """q [GROUP, HALF] halves against k [BT, HALF] halves: the scores [GROUP, BT] in float32."""
    s = tl.sum(q1.to(tl.float32)[:, None, :] * k1.to(tl.float32)[None, :, :], 2)
    return s + tl.sum(q2.to(tl.float32)[:, None, :] * k2.to(tl.float32)[None, :, :], 2)


@triton.jit
def _merge_splits(part_ptr, stat_ptr, out_ptr, g, splits, GROUP: tl.constexpr, D: tl.constexpr, SP: tl.constexpr):
    """Head group g's finished rows: its `splits` partials (max, sum, unnormalized output) merged."""
    sp = tl.arange(0, SP)[:, None]
    j = tl.arange(0, GROUP)[None, :]
    cell = (g * splits + sp) * GROUP + j  # [SP, GROUP]
    ok = sp < splits
    m = tl.load(stat_ptr + 2 * cell, mask=ok, other=float("-inf"), cache_modifier=".cg")
    l_sum = tl.load(stat_ptr + 2 * cell + 1, mask=ok, other=0.0, cache_modifier=".cg")
    dims = tl.arange(0, D)[None, None, :]
    acc = tl.load(part_ptr + cell[:, :, None] * D + dims, mask=ok[:, :, None], other=0.0, cache_modifier=".cg")
    top = tl.max(m, 0)
    weight = tl.exp(m - top[None, :])
    total = tl.sum(weight * l_sum, 0)
    out = tl.sum(weight[:, :, None] * acc, 0) / total[:, None]
    rows = g * GROUP + tl.arange(0, GROUP)[:, None]
    tl.store(out_ptr + rows * D + tl.arange(0, D)[None, :], out.to(out_ptr.dtype.element_ty))


@triton.jit
def attention_phase(
    qkv_ptr, out_ptr, k_cache_ptr, v_cache_ptr, block_table_ptr, q_norm_ptr, k_norm_ptr, cos_ptr, sin_ptr,
    part_ptr, stat_ptr, head_count_ptr,
    context_ptr, eps, scale, splits,
    NUM_HEADS: tl.constexpr, NUM_KV_HEADS: tl.constexpr, D: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BT: tl.constexpr, SP: tl.constexpr,
):  # fmt: skip
    """One layer's attention for the token at position context - 1 (context read at context_ptr, so that a
    captured graph serves every length; its pages: k_cache_ptr, v_cache_ptr, contiguous [pages, BLOCK_SIZE,
    NUM_KV_HEADS, D]), the context cut into `splits` equal parts (the last ones empty if it is short);
    out_ptr receives [NUM_HEADS * D]."""
    HALF: tl.constexpr = D // 2
    GROUP: tl.constexpr = NUM_HEADS // NUM_KV_HEADS
    context = tl.load(context_ptr)
    split_len = tl.cdiv(context, splits)
    pos = context - 1
    cos, sin = rope_cos_sin(cos_ptr, sin_ptr, pos, HALF)
    halves = tl.arange(0, HALF)[None, :]
    dims = tl.arange(0, D)[None, :]
    row_width = NUM_KV_HEADS * D
    for item in range(tl.program_id(0), NUM_KV_HEADS * splits, tl.num_programs(0)):
        g = item // splits
        s = item % splits
        q_ptrs = qkv_ptr + (g * GROUP + tl.arange(0, GROUP)[:, None]) * D + halves
        q1 = tl.load(q_ptrs, cache_modifier=".cg")
        q2 = tl.load(q_ptrs + HALF, cache_modifier=".cg")
        q1, q2 = norm_rope(q1, q2, q_norm_ptr, cos, sin, eps, HALF, True)
        k_ptrs = qkv_ptr + NUM_HEADS * D + g * D + halves
        k1 = tl.load(k_ptrs, cache_modifier=".cg")
        k2 = tl.load(k_ptrs + HALF, cache_modifier=".cg")
        k1, k2 = norm_rope(k1, k2, k_norm_ptr, cos, sin, eps, HALF, True)
        v_new = tl.load(qkv_ptr + (NUM_HEADS + NUM_KV_HEADS) * D + g * D + dims, cache_modifier=".cg")
        start = s * split_len
        end = tl.minimum(start + split_len, context)
        if (start <= pos) & (pos < end):  # this split owns the newest token: store it for later steps
            page = tl.load(block_table_ptr + pos // BLOCK_SIZE).to(tl.int64)
            row = (page * BLOCK_SIZE + pos % BLOCK_SIZE) * row_width + g * D
            tl.store(k_cache_ptr + row + halves, k1)
            tl.store(k_cache_ptr + row + HALF + halves, k2)
            tl.store(v_cache_ptr + row + dims, v_new)
        m = tl.full([GROUP], float("-inf"), tl.float32)
        l_sum = tl.zeros([GROUP], tl.float32)
        acc = tl.zeros([GROUP, D], tl.float32)
        for t0 in range(start, end, BT):
            t = t0 + tl.arange(0, BT)
            valid = t < end
            page = tl.load(block_table_ptr + t // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
            rows = ((page * BLOCK_SIZE + t % BLOCK_SIZE) * row_width + g * D)[:, None]
            newest = (t == pos)[:, None]
            kk1 = tl.where(newest, k1, tl.load(k_cache_ptr + rows + halves, mask=valid[:, None], other=0.0))
            kk2 = tl.where(newest, k2, tl.load(k_cache_ptr + rows + HALF + halves, mask=valid[:, None], other=0.0))
            vv = tl.where(newest, v_new, tl.load(v_cache_ptr + rows + dims, mask=valid[:, None], other=0.0))
            scores = tl.where(valid[None, :], _dot_halves(q1, q2, kk1, kk2) * scale, float("-inf"))
            top = tl.maximum(m, tl.max(scores, 1))
            alpha = tl.exp(m - top)
            p = tl.exp(scores - top[:, None])
            l_sum = l_sum * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.sum(p[:, :, None] * vv.to(tl.float32)[None, :, :], 1)
            m = top
        cell = (g * splits + s) * GROUP + tl.arange(0, GROUP)
        tl.store(stat_ptr + 2 * cell, m)
        tl.store(stat_ptr + 2 * cell + 1, l_sum)
        tl.store(part_ptr + cell[:, None] * D + dims, acc)
        tl.debug_barrier()
        if tl.atomic_add(head_count_ptr + g, 1, sem="acq_rel", scope="gpu") == splits - 1:
            _merge_splits(part_ptr, stat_ptr, out_ptr, g, splits, GROUP, D, SP)
            tl.atomic_xchg(head_count_ptr + g, 0, sem="relaxed", scope="gpu")


@triton.jit
def prefetch_attention_rows(
    k_cache_ptr, v_cache_ptr, block_table_ptr, context_ptr,
    NUM_KV_HEADS: tl.constexpr, D: tl.constexpr, BLOCK_SIZE: tl.constexpr, THREADS: tl.constexpr,
):  # fmt: skip
    """Into the L2: the cached K and V rows (every kv head's, contiguous in a page) of the context's tokens, the
    tokens dealt over the programs, one a thread (THREADS: the program's thread count, so none is asked for
    twice; tokens past THREADS x programs are left to the loads)."""
    context = tl.load(context_ptr)
    t = tl.program_id(0) + tl.arange(0, THREADS) * tl.num_programs(0)
    valid = t < context
    page = tl.load(block_table_ptr + t // BLOCK_SIZE, mask=valid, other=0).to(tl.int64)
    rows = (page * BLOCK_SIZE + t % BLOCK_SIZE) * (NUM_KV_HEADS * D)
    nbytes = tl.where(valid, NUM_KV_HEADS * D * (k_cache_ptr.dtype.element_ty.primitive_bitwidth // 8), 0)
    prefetch_to_l2(k_cache_ptr + rows, nbytes)
    prefetch_to_l2(v_cache_ptr + rows, nbytes)


def pick_splits(programs: int, num_kv_heads: int, wanted: int | None = None) -> int:
    """`wanted` splits of the context, or as many as fill the programs."""
    return max(1, wanted or programs // num_kv_heads)


def reference_attention(qkv, layer: int, a: dict, eps: float) -> torch.Tensor:
    """What attention_phase computes for one layer (the caches in `a` updated in place): [num_heads * D]."""
    heads, kv_heads, d, bs = a["num_heads"], a["num_kv_heads"], a["head_dim"], a["block_size"]
    context = a["context"]
    pos = torch.tensor([context - 1])
    q = qkv[: heads * d].view(1, heads, d)
    k = qkv[heads * d : (heads + kv_heads) * d].view(1, kv_heads, d)
    v = qkv[(heads + kv_heads) * d :].view(kv_heads, d)
    q = ops.rms_norm(q, a["q_norm"][layer], eps)
    k = ops.rms_norm(k, a["k_norm"][layer], eps)
    q, k = ops.rope_qk(pos.to(qkv.device), q, k, a["cos"], a["sin"])
    k_cache, v_cache = a["k_cache"][layer], a["v_cache"][layer]
    page, offset = a["block_table"][(context - 1) // bs], (context - 1) % bs
    k_cache[page, offset], v_cache[page, offset] = k[0], v
    t = torch.arange(context, device=qkv.device)
    pages = a["block_table"][t // bs].long()
    keys = k_cache[pages, t % bs].float()  # [context, kv_heads, d]
    values = v_cache[pages, t % bs].float()
    group = heads // kv_heads
    qf = q[0].float().view(kv_heads, group, d)
    scores = torch.einsum("hgd,thd->hgt", qf, keys) * d**-0.5
    out = torch.einsum("hgt,thd->hgd", scores.softmax(-1), values)
    return out.reshape(heads * d).to(qkv.dtype)


def attention_inputs(layers: int, context: int, shape: dict, device, dtype=torch.bfloat16, seed: int = 0) -> dict:
    """Random paged caches of `context` - 1 cached tokens for every layer (pages in reverse order, so that the
    block table matters), q/k norm weights and neox rotary tables: what PersistentLayers(attention=...) takes.
    `shape`: num_heads, num_kv_heads, head_dim, block_size (and optionally splits)."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    d, bs = shape["head_dim"], shape["block_size"]
    pages = -(-context // bs)
    cache_shape = (layers, pages, bs, shape["num_kv_heads"], d)

    def randn(*size, scale=1.0):
        return (scale * torch.randn(*size, generator=gen)).to(dtype).to(device)

    inv_freq = 1e6 ** -(torch.arange(0, d, 2, dtype=torch.float32) / d)
    angles = torch.outer(torch.arange(context + 1, dtype=torch.float32), inv_freq)
    return shape | {
        "context": context,
        "context_len": torch.tensor([context], dtype=torch.int32, device=device),
        "k_cache": randn(*cache_shape),
        "v_cache": randn(*cache_shape),
        "block_table": torch.arange(pages - 1, -1, -1, dtype=torch.int32).to(device),
        "q_norm": 1 + randn(layers, d, scale=0.1),
        "k_norm": 1 + randn(layers, d, scale=0.1),
        "cos": angles.cos().to(device),
        "sin": angles.sin().to(device),
    }
