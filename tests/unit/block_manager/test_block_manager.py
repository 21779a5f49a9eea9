"""Unit tests of the KV block managers (paged, and what both share), without any model."""

from __future__ import annotations

import pytest
from block_manager_harness import BS, admit, assert_consistent, compute, free_pool_order, make_seq

from allmos.block_manager.paged import PagedBlockManager
from allmos.block_manager.prefix_caching import PrefixCachingBlockManager
from allmos.registry import BuildContext


@pytest.mark.parametrize("cls", [PagedBlockManager, PrefixCachingBlockManager])
def test_needs_at_least_one_block(cls):
    with pytest.raises(ValueError):
        cls(None, BuildContext(num_blocks=0, block_size=BS))


def test_blocks_for_rounds_up():
    bm = PagedBlockManager(None, BuildContext(num_blocks=8, block_size=BS))
    assert [bm.blocks_for(n) for n in range(10)] == [0, 1, 1, 1, 1, 2, 2, 2, 2, 3]


@pytest.mark.parametrize("cls", [PagedBlockManager, PrefixCachingBlockManager])
def test_allocation_grows_block_table(cls):
    bm = cls(None, BuildContext(num_blocks=10, block_size=BS))
    seq = make_seq(0, list(range(100, 103)))
    bm.allocate(seq, 1)
    assert len(seq.block_table) == 1
    bm.allocate(seq, 4)
    assert len(seq.block_table) == 1  # still fits the first block
    first = seq.block_table[0]
    bm.allocate(seq, 5)
    assert len(seq.block_table) == 2 and seq.block_table[0] == first
    bm.allocate(seq, 12)
    assert len(seq.block_table) == 3
    bm.allocate(seq, 2)  # never shrinks
    assert len(seq.block_table) == 3
    assert len(set(seq.block_table)) == 3
    assert bm.num_free_blocks == 7 and bm.num_used_blocks == 3
    assert all(bm.ref_counts[b] == 1 for b in seq.block_table)
    assert not set(seq.block_table) & set(bm.free_pool)
    assert_consistent(bm, [seq])


def test_fresh_blocks_come_from_the_front_of_the_pool():
    bm = PagedBlockManager(None, BuildContext(num_blocks=6, block_size=BS))
    a = admit(bm, make_seq(0, list(range(9))))  # 3 blocks
    b = admit(bm, make_seq(1, list(range(5))))  # 2 blocks
    assert a.block_table == [0, 1, 2] and b.block_table == [3, 4]


@pytest.mark.parametrize("cls", [PagedBlockManager, PrefixCachingBlockManager])
@pytest.mark.parametrize("block_size", [1, 2, 4, 16])
def test_can_allocate_is_exact(cls, block_size):
    bm = cls(None, BuildContext(num_blocks=5, block_size=block_size))
    a = make_seq(0, [1] * (2 * block_size))
    bm.allocate(a, len(a))  # 2 blocks, 3 free
    b = make_seq(1, [2] * block_size)
    # An empty table: up to 3 blocks' worth of tokens fits, one token more does not.
    assert bm.can_allocate(b, 3 * block_size)
    assert not bm.can_allocate(b, 3 * block_size + 1)
    # A table that already holds 2 blocks only needs the difference.
    assert bm.can_allocate(a, 5 * block_size)
    assert not bm.can_allocate(a, 5 * block_size + 1)
    assert bm.can_allocate(a, 1)  # nothing to add
    # When it says no, allocate refuses and changes nothing.
    before = (list(a.block_table), list(bm.free_pool), list(bm.ref_counts))
    with pytest.raises(RuntimeError):
        bm.allocate(a, 5 * block_size + 1)
    assert (a.block_table, list(bm.free_pool), bm.ref_counts) == before
    # When it says yes, allocate succeeds, to the last block.
    bm.allocate(a, 5 * block_size)
    assert len(a.block_table) == 5 and bm.num_free_blocks == 0
    assert not bm.can_allocate(b, 1)
    assert bm.can_allocate(b, 0)
    assert_consistent(bm, [a])


@pytest.mark.parametrize("cls", [PagedBlockManager, PrefixCachingBlockManager])
def test_free_returns_blocks_and_resets_the_sequence(cls):
    bm = cls(None, BuildContext(num_blocks=8, block_size=BS))
    a = admit(bm, make_seq(0, list(range(10))))
    b = admit(bm, make_seq(1, list(range(50, 57))))
    compute(bm, a)
    compute(bm, b)
    assert bm.num_free_blocks == 8 - 3 - 2
    bm.free(a)
    assert a.block_table == [] and a.num_computed_tokens == 0 and a.num_cached_tokens == 0
    assert a.num_hashed_blocks == 0 and a.block_hashes == []
    assert bm.num_free_blocks == 8 - 2
    assert_consistent(bm, [b])
    bm.free(b)
    assert bm.num_free_blocks == bm.num_blocks
    assert bm.ref_counts == [0] * bm.num_blocks
    assert sorted(bm.free_pool) == list(range(8))


def test_releasing_a_free_block_is_an_error():
    bm = PagedBlockManager(None, BuildContext(num_blocks=4, block_size=BS))
    with pytest.raises(RuntimeError):
        bm.release(0)
    a = admit(bm, make_seq(0, [1, 2, 3]))
    block = a.block_table[0]
    bm.free(a)
    with pytest.raises(RuntimeError):
        bm.release(block)


def test_lru_order_of_reuse():
    """Freed blocks go to the back of the pool (a sequence's tail first); the front is reused first."""
    bm = PagedBlockManager(None, BuildContext(num_blocks=6, block_size=BS))
    a = admit(bm, make_seq(0, list(range(12))))  # blocks 0, 1, 2
    b = admit(bm, make_seq(1, list(range(8))))  # blocks 3, 4
    assert free_pool_order(bm) == [5]
    bm.free(a)
    assert free_pool_order(bm) == [5, 2, 1, 0]
    bm.free(b)
    assert free_pool_order(bm) == [5, 2, 1, 0, 4, 3]
    c = admit(bm, make_seq(2, list(range(10))))  # 3 blocks: the least recently freed
    assert c.block_table == [5, 2, 1]
    assert free_pool_order(bm) == [0, 4, 3]


def test_paged_manager_never_shares():
    bm = PagedBlockManager(None, BuildContext(num_blocks=8, block_size=BS))
    tokens = list(range(12))
    a = admit(bm, make_seq(0, tokens + [99]))
    compute(bm, a)
    b = admit(bm, make_seq(1, tokens + [98]))
    assert not set(a.block_table) & set(b.block_table)
    assert b.num_cached_tokens == 0 and b.num_computed_tokens == 0
    assert bm.stats.counts["cached_prompt_tokens"] == 0


# ------------------------------------------------------------------------------------ prefix caching
