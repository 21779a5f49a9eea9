"""Plain-torch references for the paged attention tests: a paged cache with a poisoned padding page,
gathering a sequence's KV back, and attention in float64."""

import torch

SENTINEL = -7777.0
POISON = 1.0e4  # K/V value of the page that padding block-table entries point to


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def make_paged_cache(context_lens, block_size, num_kv_heads, head_dim, dtype, gen, extra_cols=2):
    """Random K/V caches with shuffled physical blocks.

    Block-table entries past each sequence's used blocks point to a poison page (huge values), so a
    kernel reading beyond a sequence's context corrupts its output.
    """
    blocks_per_seq = [-(-n // block_size) for n in context_lens]
    num_used = sum(blocks_per_seq)
    num_blocks = num_used + 3
    shape = (num_blocks, block_size, num_kv_heads, head_dim)
    k_cache = torch.randn(shape, generator=gen).to(dtype)
    v_cache = torch.randn(shape, generator=gen).to(dtype)
    poison_page = num_blocks - 1
    k_cache[poison_page] = POISON
    v_cache[poison_page] = POISON

    physical = torch.randperm(num_blocks - 1, generator=gen)[:num_used].to(torch.int32)
    max_blocks = max(blocks_per_seq) + extra_cols
    block_tables = torch.full((len(context_lens), max_blocks), poison_page, dtype=torch.int32)
    start = 0
    for i, n in enumerate(blocks_per_seq):
        block_tables[i, :n] = physical[start : start + n]
        start += n
    return k_cache, v_cache, block_tables


def gather_kv(cache, block_table, length):
    """[length, H, D] float64 tokens of one sequence, read position by position."""
    block_size = cache.shape[1]
    pos = torch.arange(length)
    pages = block_table[pos // block_size].long()
    return cache[pages, pos % block_size].double()


def reference_attention(q, k, v, scale, q_positions):
    """Dense float64 attention. q [Lq, Hq, D], k/v [Lk, Hkv, D]; query i sees keys <= q_positions[i]."""
    group = q.shape[1] // k.shape[1]
    k = k.repeat_interleave(group, dim=1)
    v = v.repeat_interleave(group, dim=1)
    scores = torch.einsum("qhd,khd->hqk", q.double(), k) * scale
    visible = torch.arange(k.shape[0])[None, :] <= q_positions[:, None]
    scores = scores.masked_fill(~visible[None], float("-inf"))
    return torch.einsum("hqk,khd->qhd", scores.softmax(-1), v)


def assert_close(actual, expected, atol, rtol):
    assert not torch.isnan(actual).any(), "NaN in output (unwritten or 0/0)"
    torch.testing.assert_close(actual.double(), expected.double(), atol=atol, rtol=rtol)
