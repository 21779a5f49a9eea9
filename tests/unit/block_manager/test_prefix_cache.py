"""Unit tests of the prefix-caching block manager: hits, registration, eviction, hashing."""

from __future__ import annotations

from block_manager_harness import BS, admit, assert_consistent, compute, free_pool_order, make_seq

from allmos.block_manager.prefix_caching import PrefixCachingBlockManager, chain_hash
from allmos.registry import BuildContext


def test_prefix_hit_shares_full_blocks():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    shared = list(range(10, 18))  # two full blocks
    a = admit(bm, make_seq(0, shared + [1, 2]))
    compute(bm, a)
    assert a.num_hashed_blocks == 2 and len(a.block_hashes) == 2
    b = admit(bm, make_seq(1, shared + [7, 8, 9]))
    assert b.num_cached_tokens == 2 * BS
    assert b.num_computed_tokens == 2 * BS  # the scheduler computes only the rest
    assert b.num_uncomputed_tokens == 3
    assert b.block_table[:2] == a.block_table[:2]
    assert all(bm.ref_counts[blk] == 2 for blk in a.block_table[:2])
    assert b.block_table[2] not in a.block_table and bm.ref_counts[b.block_table[2]] == 1
    assert b.block_hashes == a.block_hashes and b.num_hashed_blocks == 2
    assert bm.num_used_blocks == 3 + 1
    assert bm.stats.counts["cached_prompt_tokens"] == 2 * BS
    assert_consistent(bm, [a, b])
    # Freeing one sharer keeps the blocks held by the other.
    bm.free(a)
    assert all(bm.ref_counts[blk] == 1 for blk in b.block_table)
    assert_consistent(bm, [b])
    bm.free(b)
    assert bm.num_free_blocks == bm.num_blocks and bm.ref_counts == [0] * 16


def test_only_full_blocks_are_shared():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    a = admit(bm, make_seq(0, list(range(10, 20))))  # blocks [10..13], [14..17], [18, 19]
    compute(bm, a)
    # Agrees on 6 tokens: one full block plus half of the next.
    b = admit(bm, make_seq(1, list(range(10, 16)) + [90, 91, 92]))
    assert b.num_cached_tokens == BS
    assert b.block_table[0] == a.block_table[0] and b.block_table[1] != a.block_table[1]
    # Agrees on the first 10 tokens and on nothing else: the partial third block of `a` is never a hit.
    c = admit(bm, make_seq(2, list(range(10, 20)) + [5, 5]))
    assert c.num_cached_tokens == 2 * BS
    assert c.block_table[2] != a.block_table[2]
    # Differs in the very first token: no hit at all.
    d = admit(bm, make_seq(3, [11] + list(range(11, 20))))
    assert d.num_cached_tokens == 0 and not set(d.block_table) & set(a.block_table)
    assert_consistent(bm, [a, b, c, d])


def test_no_hit_before_mark_computed():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    shared = list(range(20, 28))
    a = admit(bm, make_seq(0, shared + [1]))
    b = admit(bm, make_seq(1, shared + [2]))  # a's KV is not written yet
    assert b.num_cached_tokens == 0 and b.num_computed_tokens == 0
    assert not set(a.block_table) & set(b.block_table)
    assert bm.stats.counts["cached_prompt_tokens"] == 0
    assert bm.block_of_hash == {}  # nothing registered at allocation time
    # A partial chunk registers only the blocks it completed.
    compute(bm, a, upto=BS + 1)
    assert a.num_hashed_blocks == 1 and len(bm.block_of_hash) == 1
    c = admit(bm, make_seq(2, shared + [3]))
    assert c.num_cached_tokens == BS and c.block_table[0] == a.block_table[0]
    compute(bm, a)
    assert a.num_hashed_blocks == 2
    d = admit(bm, make_seq(3, shared + [4]))
    assert d.num_cached_tokens == 2 * BS and d.block_table[:2] == a.block_table[:2]
    assert bm.stats.counts["cached_prompt_tokens"] == 3 * BS
    assert_consistent(bm, [a, b, c, d])


def test_mark_computed_is_idempotent_and_ignores_partial_blocks():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=8, block_size=BS))
    a = admit(bm, make_seq(0, list(range(7))))
    compute(bm, a, upto=3)
    assert a.num_hashed_blocks == 0 and bm.block_of_hash == {}
    compute(bm, a)  # 7 tokens: one full block
    compute(bm, a)
    assert a.num_hashed_blocks == 1 and len(a.block_hashes) == 1 and len(bm.block_of_hash) == 1
    assert bm.hash_of_block == {a.block_table[0]: a.block_hashes[0]}
    assert a.block_hashes[0] == chain_hash(0, [0, 1, 2, 3])


def test_decode_tokens_complete_and_register_blocks():
    """Generated tokens fill blocks too; once their KV is written those blocks become hits."""
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=8, block_size=BS))
    a = admit(bm, make_seq(0, [1, 2, 3]))
    compute(bm, a)
    for token in [4, 5, 6]:  # three decode steps
        a.token_ids.append(token)
        bm.allocate(a, len(a))
        compute(bm, a)
    assert a.num_hashed_blocks == 1  # [1, 2, 3, 4]; the second block holds [5, 6] only
    b = admit(bm, make_seq(1, [1, 2, 3, 4, 5]))
    assert b.num_cached_tokens == BS and b.block_table[0] == a.block_table[0]


def test_the_last_block_is_never_a_hit():
    """At least one token must be computed to produce logits."""
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    tokens = list(range(30, 38))  # exactly two full blocks
    a = admit(bm, make_seq(0, tokens))
    compute(bm, a)
    assert a.num_hashed_blocks == 2
    same = admit(bm, make_seq(1, tokens))
    assert same.num_cached_tokens == BS  # not 2 * BS
    assert same.num_uncomputed_tokens == BS
    assert same.block_table[0] == a.block_table[0] and same.block_table[1] != a.block_table[1]
    one_block = admit(bm, make_seq(2, tokens[:BS]))
    assert one_block.num_cached_tokens == 0 and one_block.num_uncomputed_tokens == BS
    longer = admit(bm, make_seq(3, tokens + [1]))
    assert longer.num_cached_tokens == 2 * BS and longer.num_uncomputed_tokens == 1
    assert bm.stats.counts["cached_prompt_tokens"] == BS + 0 + 2 * BS


def test_freed_blocks_stay_cached_and_hits_take_them_out_of_the_pool():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=6, block_size=BS))
    tokens = list(range(40, 48))
    a = admit(bm, make_seq(0, tokens + [1]))
    compute(bm, a)
    blocks = list(a.block_table)
    bm.free(a)
    assert bm.num_free_blocks == 6
    assert all(bm.ref_counts[blk] == 0 for blk in blocks)
    assert len(bm.block_of_hash) == 2  # the hashes survive the free
    b = admit(bm, make_seq(1, tokens + [2, 3]))
    assert b.block_table[:2] == blocks[:2] and b.num_cached_tokens == 2 * BS
    assert all(bm.ref_counts[blk] == 1 for blk in b.block_table)
    assert bm.num_free_blocks == 6 - 3
    assert not set(b.block_table) & set(bm.free_pool)
    assert_consistent(bm, [b])


def test_evicting_a_cached_block_removes_its_hash():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=6, block_size=BS))
    tokens = list(range(60, 68))
    a = admit(bm, make_seq(0, tokens))  # blocks 0, 1
    compute(bm, a)
    h0, h1 = a.block_hashes
    bm.free(a)
    assert free_pool_order(bm) == [2, 3, 4, 5, 1, 0]
    # Never-used blocks are handed out before cached ones.
    filler = admit(bm, make_seq(1, [9] * (4 * BS)))
    assert filler.block_table == [2, 3, 4, 5]
    assert bm.block_of_hash == {h0: 0, h1: 1}
    # The pool runs dry of uncached blocks: the least recently freed cached block (a's tail) goes.
    one = admit(bm, make_seq(2, [8] * BS))
    assert one.block_table == [1]
    assert h1 not in bm.block_of_hash and 1 not in bm.hash_of_block and 1 not in bm.tokens_of_block
    assert bm.block_of_hash == {h0: 0}
    # The evicted block no longer hits, the surviving one still does.
    bm.free(filler)
    again = admit(bm, make_seq(3, tokens + [1]))
    assert again.num_cached_tokens == BS and again.block_table[0] == 0
    assert again.block_table[1] != 1
    assert_consistent(bm, [one, again])


def test_cache_fills_up_when_every_block_is_evicted():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=3, block_size=BS))
    tokens = list(range(70, 78))
    a = admit(bm, make_seq(0, tokens + [1]))
    compute(bm, a)
    bm.free(a)
    other = admit(bm, make_seq(1, [5] * (3 * BS)))  # takes all three blocks
    compute(bm, other)
    assert set(bm.block_of_hash.values()) <= set(other.block_table)
    assert all(bm.hash_of_block[blk] != h for blk in other.block_table for h in a.block_hashes)
    bm.free(other)
    c = admit(bm, make_seq(2, tokens + [1]))
    assert c.num_cached_tokens == 0


def test_chain_hashing_depends_on_the_whole_prefix():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    x, y, z = [1, 2, 3, 4], [5, 6, 7, 8], [9, 10, 11, 12]
    a = admit(bm, make_seq(0, x + y + [0]))
    compute(bm, a)
    # The same second block after a different first block is not a hit.
    b = admit(bm, make_seq(1, z + y + [0]))
    assert b.num_cached_tokens == 0
    assert not set(a.block_table) & set(b.block_table)
    compute(bm, b)
    assert a.block_hashes[1] != b.block_hashes[1]
    assert len(bm.block_of_hash) == 4
    # A sequence that starts with y (a's second block) does not hit either.
    c = admit(bm, make_seq(2, y + [0]))
    assert c.num_cached_tokens == 0
    # Each chain still hits on its own.
    d = admit(bm, make_seq(3, z + y + [1]))
    assert d.block_table[:2] == b.block_table[:2] and d.num_cached_tokens == 2 * BS
    assert chain_hash(0, x) != chain_hash(0, z)
    assert chain_hash(chain_hash(0, x), y) != chain_hash(chain_hash(0, z), y)
    assert chain_hash(0, x) != chain_hash(1, x)


def test_duplicate_blocks_computed_at_once_register_once():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=8, block_size=BS))
    tokens = list(range(80, 84))
    a = admit(bm, make_seq(0, tokens + [1]))
    b = admit(bm, make_seq(1, tokens + [2]))  # no hit: a is not computed yet
    compute(bm, a)
    compute(bm, b)
    assert bm.block_of_hash == {a.block_hashes[0]: a.block_table[0]}
    assert b.block_table[0] not in bm.hash_of_block
    assert b.block_hashes == a.block_hashes
    registered = a.block_table[0]
    bm.free(a)
    bm.free(b)
    c = admit(bm, make_seq(2, tokens + [3]))
    assert c.block_table[0] == registered and c.num_cached_tokens == BS


def test_cached_tokens_counts_every_hit_over_the_run():
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    tokens = list(range(90, 102))  # three full blocks
    a = admit(bm, make_seq(0, tokens + [1]))
    assert bm.stats.counts["cached_prompt_tokens"] == 0
    compute(bm, a)
    b = admit(bm, make_seq(1, tokens[:8] + [2]))
    c = admit(bm, make_seq(2, tokens + [3]))
    assert (b.num_cached_tokens, c.num_cached_tokens) == (8, 12)
    assert bm.stats.counts["cached_prompt_tokens"] == 20
    # A preempted sequence that comes back is looked up again and counted again.
    bm.free(c)
    c2 = admit(bm, c)
    assert c2.num_cached_tokens == 12
    assert bm.stats.counts["cached_prompt_tokens"] == 32


def test_prefix_can_allocate_never_overpromises():
    """can_allocate ignores hits (it may say no to a request that would fit) but never says yes wrongly."""
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=4, block_size=BS))
    tokens = list(range(8))
    a = admit(bm, make_seq(0, tokens + [1]))  # 3 blocks
    compute(bm, a)
    bm.free(a)
    for length in range(1, 5 * BS):
        probe = make_seq(9, (tokens + list(range(100, 200)))[:length])
        if bm.can_allocate(probe, length):
            bm.allocate(probe, length)
            assert len(probe.block_table) == bm.blocks_for(length)
            bm.free(probe)
        else:
            assert bm.blocks_for(length) > bm.num_free_blocks
    assert bm.num_free_blocks == 4 and bm.ref_counts == [0] * 4


def test_a_hash_collision_is_never_a_hit(monkeypatch):
    """Blocks are compared token for token on a hit, so even colliding hashes cannot share wrong KV."""
    from allmos.block_manager import prefix_caching

    monkeypatch.setattr(prefix_caching, "chain_hash", lambda prev, tokens: 42)  # every block collides
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    a = admit(bm, make_seq(0, [1, 2, 3, 4, 0]))
    compute(bm, a)
    assert bm.block_of_hash == {42: a.block_table[0]}
    other = admit(bm, make_seq(1, [5, 6, 7, 8, 0]))
    assert other.num_cached_tokens == 0 and other.block_table[0] != a.block_table[0]
    same = admit(bm, make_seq(2, [1, 2, 3, 4, 9]))
    assert same.num_cached_tokens == BS and same.block_table[0] == a.block_table[0]


def test_blocks_of_a_failed_step_leave_the_cache_unless_shared():
    """After a failed step the KV of a sequence's own blocks may never have been written: a later
    request must not hit them. Blocks another sequence shares were written by an earlier step: kept."""
    bm = PrefixCachingBlockManager(None, BuildContext(num_blocks=16, block_size=BS))
    shared = list(range(10, 18))  # two full blocks
    a = admit(bm, make_seq(0, shared + [1, 2]))
    compute(bm, a)
    b = admit(bm, make_seq(1, shared + list(range(30, 34))))  # shares two blocks, owns one full block
    compute(bm, b)
    bm.free_after_failure(b)
    assert_consistent(bm, [a])
    c = admit(bm, make_seq(2, shared + list(range(30, 34)) + [40, 41]))
    assert c.num_cached_tokens == 2 * BS  # the shared prefix still hits; b's own block does not
