"""Preemption, static vs continuous batching and prefix hits, driven by the fake model of
scheduler_harness.py."""

from __future__ import annotations

import pytest
from scheduler_harness import (
    FakeModel,
    drive,
    make_scheduler,
    make_seq,
    run_alone,
)

from allmos.sequence import SequenceStatus


@pytest.mark.parametrize("prefix", [False, True])
def test_preemption_with_a_tiny_cache(prefix):
    # 3 requests of 6 prompt tokens growing to 15 tokens each (4 blocks); the cache has 6 blocks.
    sched = make_scheduler(num_blocks=6, block_size=4, prefix=prefix, budget=64, max_model_len=64)
    seqs = [make_seq(i, [60 + i] * 2 + [1, 2, 3, 4], max_tokens=10) for i in range(3)]
    for s in seqs:
        sched.add(s)
    preempted_order = []

    def watch(step, batch, finished):
        for s in seqs:
            if s.status is SequenceStatus.WAITING and s.num_output_tokens > 0 and s.seq_id not in watch.down:
                # back to waiting after having run: its blocks went back to the pool
                assert s.block_table == [] and s.num_computed_tokens == 0 and s.num_hashed_blocks == 0
                preempted_order.append(s.seq_id)
                watch.down.add(s.seq_id)
            elif s.status is not SequenceStatus.WAITING:
                watch.down.discard(s.seq_id)

    watch.down = set()
    drive(sched, on_step=watch)
    assert sched.stats.counts["preemptions"] > 0
    assert sum(s.num_preemptions for s in seqs) == sched.stats.counts["preemptions"]
    assert preempted_order[0] == 2  # the most recently admitted goes first
    for s in seqs:
        assert s.is_finished and s.num_output_tokens == 10
        assert s.output_token_ids == run_alone(s, 64)


def test_preempted_sequence_goes_back_to_the_front_and_recomputes_everything():
    sched = make_scheduler(num_blocks=4, block_size=4, budget=64, max_model_len=64)
    a = make_seq(0, [1] * 8, max_tokens=4)  # grows to 11 tokens: 3 blocks
    b = make_seq(1, [2] * 8, max_tokens=4)
    later = make_seq(2, [3] * 3, max_tokens=2)
    for s in (a, b, later):
        sched.add(s)
    model = FakeModel(sched.block_manager)
    batch = sched.schedule()
    assert batch.seqs == [a, b]  # 2 + 2 blocks: the cache is full, `later` waits
    sched.postprocess(batch, model.run(batch))
    batch = sched.schedule()  # 9 tokens each: both need a third block, none is free -> b is preempted
    assert batch.seqs == [a] and not batch.is_prefill
    assert b.status is SequenceStatus.WAITING and b.block_table == [] and b.num_computed_tokens == 0
    assert b.num_preemptions == 1 and sched.stats.counts["preemptions"] == 1
    assert list(sched.waiting) == [b, later]
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    assert b.num_output_tokens == 4
    for s in (a, b, later):
        assert s.output_token_ids == run_alone(s, 64)


def test_a_sequence_that_cannot_grow_preempts_itself_when_alone():
    sched = make_scheduler(num_blocks=2, block_size=4, budget=64, max_model_len=64)
    a = make_seq(0, [1] * 4, max_tokens=4)  # needs 2 blocks at 5..8 tokens
    b = make_seq(1, [2] * 4, max_tokens=4)
    sched.add(a)
    sched.add(b)
    drive(sched)
    assert sched.stats.counts["preemptions"] >= 1
    assert a.output_token_ids == run_alone(a, 64) and b.output_token_ids == run_alone(b, 64)


# ------------------------------------------------------------------------------------ static batching


def test_static_batching_admits_nothing_until_the_cohort_finishes():
    sched = make_scheduler("static", max_num_seqs=2)
    quick = make_seq(0, [1, 2, 3], max_tokens=2)
    slow = make_seq(1, [4, 5, 6], max_tokens=8)
    nxt = [make_seq(2 + i, [7 + i] * 3, max_tokens=3) for i in range(2)]
    for s in [quick, slow, *nxt]:
        sched.add(s)
    seen = []

    def watch(step, batch, finished):
        ids = {s.seq_id for s in batch.seqs}
        if ids & {2, 3}:
            assert slow.is_finished and quick.is_finished, "the next cohort started before the first ended"
        seen.append(ids)

    drive(sched, on_step=watch)
    assert seen[0] == {0, 1}
    # while `slow` decodes alone, nothing joins it
    assert all(ids == {1} for ids in seen[2:8])
    assert {2, 3} in seen
    for s in [quick, slow, *nxt]:
        assert s.output_token_ids == run_alone(s)


def test_continuous_batching_fills_a_free_slot_at_once():
    sched = make_scheduler("continuous", max_num_seqs=2)
    quick = make_seq(0, [1, 2, 3], max_tokens=2)
    slow = make_seq(1, [4, 5, 6], max_tokens=8)
    nxt = make_seq(2, [7, 7, 7], max_tokens=3)
    for s in [quick, slow, nxt]:
        sched.add(s)
    batches = drive(sched)
    # step 0 prefill {0, 1}; step 1 decode finishes `quick`; step 2 prefills `nxt` while `slow` runs
    assert [s.seq_id for s in batches[2].seqs] == [2] and batches[2].is_prefill
    assert any(slow in b.seqs for b in batches[3:])  # it kept decoding alongside
    for s in [quick, slow, nxt]:
        assert s.output_token_ids == run_alone(s)


def test_static_cohort_limited_by_free_blocks():
    sched = make_scheduler("static", num_blocks=4, block_size=4, max_num_seqs=4, budget=64, max_model_len=64)
    seqs = [make_seq(i, [10 + i] * 8, max_tokens=2) for i in range(3)]  # 2 blocks each at admission
    for s in seqs:
        sched.add(s)
    batches = drive(sched)
    assert {s.seq_id for s in batches[0].seqs} == {0, 1}
    later = [i for i, b in enumerate(batches) if seqs[2] in b.seqs]
    first_done = max(i for i, b in enumerate(batches) if seqs[0] in b.seqs or seqs[1] in b.seqs)
    assert min(later) > first_done
    for s in seqs:
        assert s.output_token_ids == run_alone(s, 64)


# ------------------------------------------------------------------------------------ prefix caching


def test_prefix_hit_skips_the_cached_prompt_tokens():
    sched = make_scheduler(prefix=True, block_size=4)
    shared = list(range(100, 116))  # 4 full blocks
    a = make_seq(0, shared + [1, 2], max_tokens=3)
    sched.add(a)
    drive(sched)
    b = make_seq(1, shared + [3, 4, 5], max_tokens=3)
    sched.add(b)
    batch = sched.schedule()
    assert batch.seqs == [b] and batch.num_new_tokens == [3]
    assert b.num_cached_tokens == 16 and sched.block_manager.stats.counts["cached_prompt_tokens"] == 16
    bm = sched.block_manager
    assert [bm.block_of_hash[h] for h in b.block_hashes[:4]] == b.block_table[:4]
    assert all(bm.ref_counts[blk] == 1 for blk in b.block_table)  # a is gone; b alone holds them


def test_prefix_hit_end_to_end():
    sched = make_scheduler(prefix=True, block_size=4)
    model = FakeModel(sched.block_manager)
    shared = list(range(100, 116))
    a = make_seq(0, shared + [1, 2], max_tokens=3)
    b = make_seq(1, shared + [3, 4, 5], max_tokens=3)
    same = make_seq(2, list(shared), max_tokens=3)
    cached = {}

    def watch(step, batch, finished):
        if batch.is_prefill:
            for s, n in zip(batch.seqs, batch.num_new_tokens):
                cached[s.seq_id] = (s.num_cached_tokens, n)

    drive(sched, model, arrivals={0: [a], 5: [b, same]}, on_step=watch)
    # b computes only its 3 new tokens; `same` is all hits, so its last block is recomputed
    assert cached == {0: (0, 18), 1: (16, 3), 2: (12, 4)}
    assert sched.block_manager.stats.counts["cached_prompt_tokens"] == 28
    for s in (a, b, same):
        assert s.output_token_ids == run_alone(s)
