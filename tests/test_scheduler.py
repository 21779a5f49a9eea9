"""The schedulers driven by a fake model that reads and writes a simulated paged KV cache.

`FakeModel` stands in for the model runner. As in a real transformer, the "KV" of position p
depends on every token up to p: it is a digest of the sequence's tokens[0..p]. For every scheduled
token the fake model writes that digest into the slot its block table names, then reads the whole
context back through the block table and checks every slot holds the digest it should. The token
it returns is a deterministic function of the context. A scheduler or block manager that computes
the wrong tokens, reads KV that was never written, reuses a block whose KV belongs to another
prefix or position, or overwrites a block another sequence still reads fails an assertion or
produces wrong output tokens.
"""

from __future__ import annotations

from collections import Counter

import pytest

from allmos.engine.batch import ScheduledBatch, StepOutput
from allmos.engine.scheduler import ContinuousScheduler, SchedulerLimits, StaticScheduler
from allmos.engine.sequence import Sequence, SequenceStatus
from allmos.memory.block_manager import PagedBlockManager
from allmos.memory.prefix_cache import PrefixCachingBlockManager
from allmos.sampling_params import SamplingParams

EOS = 3
SCHEDULERS = {"continuous": ContinuousScheduler, "static": StaticScheduler}


def next_token(context: list[int]) -> int:
    """Depends on the last three tokens and the length; EOS (3) comes up about once in 97 tokens."""
    a, b, c = ([0, 0, 0] + context)[-3:]
    return (a * 1_000_003 + b * 10_007 + c * 101 + len(context) * 7919) % 97 + 3


def reference_output(prompt: list[int], params: SamplingParams, max_model_len: int, eos=(EOS,)) -> list[int]:
    """What a request must produce: the model applied one token at a time, with the stop rules."""
    tokens = list(prompt)
    while True:
        token = next_token(tokens)
        tokens.append(token)
        out = len(tokens) - len(prompt)
        if (not params.ignore_eos and token in eos) or out >= params.max_tokens or len(tokens) >= max_model_len:
            return tokens[len(prompt) :]


def prefix_digests(tokens: list[int]) -> list[int]:
    """digests[p] stands for the KV of position p: it depends on tokens[0..p] and nothing else."""
    out, digest = [], 0
    for token in tokens:
        digest = hash((digest, token))
        out.append(digest)
    return out


class FakeModel:
    def __init__(self, block_manager, token_fn=next_token):
        self.bm = block_manager
        self.token_fn = token_fn
        self.slots: dict[tuple[int, int], int] = {}  # (block, offset) -> the KV (digest) it holds
        self.steps = 0

    def run(self, batch: ScheduledBatch) -> StepOutput:
        return StepOutput(self.sample(batch))

    def sample(self, batch: ScheduledBatch) -> list[int]:
        bs = self.bm.block_size
        hashed = getattr(self.bm, "hash_of_block", {})
        out = []
        assert len(batch.seqs) == len(batch.num_new_tokens) > 0
        assert len({s.seq_id for s in batch.seqs}) == len(batch.seqs)
        for seq, n in zip(batch.seqs, batch.num_new_tokens):
            start, end = seq.num_computed_tokens, seq.num_computed_tokens + n
            assert n >= 1 and end <= len(seq)
            if not batch.is_prefill:
                assert n == 1 and end == len(seq)
            assert len(seq.block_table) >= self.bm.blocks_for(end), "block table does not cover the step"
            kv = prefix_digests(seq.token_ids[:end])
            for pos in range(start, end):
                block = seq.block_table[pos // bs]
                assert self.bm.ref_counts[block] == 1, f"writing into block {block} shared or not owned"
                assert block not in hashed, f"writing into block {block}, registered in the prefix cache"
                self.slots[(block, pos % bs)] = kv[pos]
            for pos in range(end):
                slot = (seq.block_table[pos // bs], pos % bs)
                assert self.slots.get(slot) == kv[pos], f"seq {seq.seq_id} reads wrong KV at position {pos}"
            out.append(self.token_fn(seq.token_ids[:end]))
        self.steps += 1
        return out


def make_scheduler(
    kind="continuous",
    num_blocks=64,
    block_size=4,
    prefix=False,
    max_num_seqs=8,
    budget=256,
    max_model_len=256,
    chunked=False,
    eos=(EOS,),
):
    bm = (PrefixCachingBlockManager if prefix else PagedBlockManager)(num_blocks, block_size)
    limits = SchedulerLimits(max_num_seqs, budget, max_model_len, chunked)
    return SCHEDULERS[kind](limits, bm, set(eos))


def make_seq(seq_id, prompt, max_tokens=8, ignore_eos=True):
    return Sequence(seq_id, prompt, SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=ignore_eos))


def live_sequences(sched) -> list[Sequence]:
    return list(sched.running) + list(sched.waiting)


def check_invariants(sched) -> None:
    """Block ownership, limits and queue states after a step."""
    bm = sched.block_manager
    limits = sched.limits
    counts = Counter(b for s in live_sequences(sched) for b in s.block_table)
    for block in range(bm.num_blocks):
        assert bm.ref_counts[block] == counts[block], f"block {block}: ref count vs tables"
        assert (block in bm.free_pool) == (counts[block] == 0)
    assert bm.num_free_blocks == bm.num_blocks - len(counts)
    for s in live_sequences(sched):
        assert len(set(s.block_table)) == len(s.block_table)
    assert len(sched.running) <= limits.max_num_seqs
    for s in sched.running:
        assert s.status is SequenceStatus.RUNNING
        assert s.num_computed_tokens == len(s) - 1  # the last sampled token waits for the next decode
        assert len(s.block_table) >= bm.blocks_for(s.num_computed_tokens)
    for i, s in enumerate(sched.waiting):
        assert s.status is SequenceStatus.WAITING
        if i > 0:  # only the head may hold blocks (a prompt part-way through chunked prefill)
            assert s.block_table == [] and s.num_computed_tokens == 0
    if hasattr(bm, "block_of_hash"):
        assert {b: h for h, b in bm.block_of_hash.items()} == bm.hash_of_block


def check_batch(sched, batch: ScheduledBatch) -> None:
    limits = sched.limits
    assert len(batch) <= limits.max_num_seqs
    if batch.is_prefill:
        assert batch.num_tokens <= limits.max_num_batched_tokens
        if not limits.chunked_prefill:
            assert all(n == s.num_uncomputed_tokens for s, n in zip(batch.seqs, batch.num_new_tokens))
    else:
        assert batch.num_new_tokens == [1] * len(batch)


def drive(sched, model=None, max_steps=10_000, arrivals=None, on_step=None):
    """Run to completion; `arrivals` maps a step number to the sequences added before it. Returns the batches."""
    model = model or FakeModel(sched.block_manager)
    arrivals = dict(arrivals or {})
    batches = []
    step = 0
    while sched.has_unfinished() or arrivals:
        for seq in arrivals.pop(step, []):
            sched.add(seq)
        if not sched.has_unfinished():
            step += 1
            continue
        batch = sched.schedule()
        check_batch(sched, batch)
        tokens = model.run(batch)
        finished = sched.postprocess(batch, tokens)
        assert all(s.is_finished and s.block_table == [] for s in finished)
        check_invariants(sched)
        batches.append(batch)
        if on_step is not None:
            on_step(step, batch, finished)
        step += 1
        assert step < max_steps, "no progress: the scheduler looks deadlocked"
    bm = sched.block_manager
    assert bm.num_free_blocks == bm.num_blocks and bm.ref_counts == [0] * bm.num_blocks
    return batches


def run_alone(seq: Sequence, max_model_len: int = 256, eos=(EOS,)) -> list[int]:
    """The request's output on a fresh scheduler with a big cache and nothing else running."""
    fresh = Sequence(seq.seq_id, seq.token_ids[: seq.num_prompt_tokens], seq.params)
    sched = make_scheduler(num_blocks=512, block_size=16, max_model_len=max_model_len, budget=4096, eos=eos)
    sched.add(fresh)
    drive(sched)
    return fresh.output_token_ids


# -------------------------------------------------------------------------------------- basic flow


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_prefill_then_decode(kind):
    sched = make_scheduler(kind)
    seqs = [make_seq(i, list(range(10 * i + 10, 10 * i + 10 + n)), max_tokens=4) for i, n in enumerate([5, 7, 3])]
    for s in seqs:
        sched.add(s)
    model = FakeModel(sched.block_manager)
    batch = sched.schedule()
    assert batch.is_prefill and batch.seqs == seqs and batch.num_new_tokens == [5, 7, 3]
    sched.postprocess(batch, model.run(batch))
    assert [s.num_output_tokens for s in seqs] == [1, 1, 1]
    assert all(s.status is SequenceStatus.RUNNING for s in seqs)
    for step in range(3):
        batch = sched.schedule()
        assert not batch.is_prefill and batch.seqs == seqs and batch.num_new_tokens == [1, 1, 1]
        finished = sched.postprocess(batch, model.run(batch))
        assert finished == (seqs if step == 2 else [])
    assert not sched.has_unfinished()
    assert all(s.is_finished and s.num_output_tokens == 4 for s in seqs)
    for s in seqs:
        assert s.output_token_ids == reference_output(s.token_ids[: s.num_prompt_tokens], s.params, 256)
    assert sched.block_manager.num_free_blocks == sched.block_manager.num_blocks


def test_run_alone_matches_the_reference():
    for i, prompt in enumerate([[5], list(range(1, 40)), [7, 7, 7, 7]]):
        for params in [SamplingParams(max_tokens=30), SamplingParams(max_tokens=30, ignore_eos=True)]:
            seq = Sequence(i, prompt, params)
            assert run_alone(seq) == reference_output(prompt, params, 256)


def test_scheduling_an_empty_scheduler_raises():
    sched = make_scheduler()
    assert not sched.has_unfinished()
    with pytest.raises(RuntimeError):
        sched.schedule()


# ------------------------------------------------------------------------------------------ limits


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_max_num_seqs_respected_every_step(kind):
    sched = make_scheduler(kind, max_num_seqs=3)
    seqs = [make_seq(i, [i + 10] * (i + 2), max_tokens=2 + i % 4) for i in range(10)]
    for s in seqs:
        sched.add(s)
    batches = drive(sched)  # check_batch/check_invariants assert the limit every step
    assert max(len(b) for b in batches) == 3
    for s in seqs:
        assert s.output_token_ids == run_alone(s)


@pytest.mark.parametrize("kind", SCHEDULERS)
@pytest.mark.parametrize("max_num_seqs", [1, 2, 3, 5])
def test_first_prefill_admits_up_to_max_num_seqs(kind, max_num_seqs):
    """With room in budget and cache, one prefill step admits max_num_seqs waiting prompts, not fewer."""
    sched = make_scheduler(kind, max_num_seqs=max_num_seqs)
    for i in range(8):
        sched.add(make_seq(i, [20 + i] * 3))
    batch = sched.schedule()
    assert batch.is_prefill and len(batch) == max_num_seqs
    assert len(sched.running) == max_num_seqs


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_max_num_batched_tokens_respected(kind):
    sched = make_scheduler(kind, budget=25, max_model_len=25)
    seqs = [make_seq(i, [30 + i] * 10, max_tokens=3) for i in range(5)]
    for s in seqs:
        sched.add(s)
    batches = drive(sched)
    prefills = [b for b in batches if b.is_prefill]
    assert all(b.num_tokens <= 25 for b in prefills)
    if kind == "continuous":
        assert [b.num_new_tokens for b in prefills] == [[10, 10], [10, 10], [10]]
    for s in seqs:
        assert s.output_token_ids == run_alone(s)


def test_chunked_prefill_splits_a_long_prompt():
    sched = make_scheduler(budget=16, chunked=True)
    long = make_seq(0, list(range(40, 90)), max_tokens=4)  # 50 tokens: 16 + 16 + 16 + 2
    short = make_seq(1, [5, 6, 7, 8, 9], max_tokens=4)
    sched.add(long)
    sched.add(short)
    model = FakeModel(sched.block_manager)
    for computed in (16, 32, 48):
        batch = sched.schedule()
        assert batch.is_prefill and batch.seqs == [long] and batch.num_new_tokens == [16]
        sched.postprocess(batch, model.run(batch))
        assert long.num_computed_tokens == computed and long.num_output_tokens == 0  # partial: no token
        assert long.status is SequenceStatus.WAITING and list(sched.waiting) == [long, short]
        assert len(long.block_table) == sched.block_manager.blocks_for(50)  # the prompt's blocks held throughout
    batch = sched.schedule()  # the rest of the long prompt, and the short prompt in the leftover budget
    assert batch.seqs == [long, short] and batch.num_new_tokens == [2, 5]
    sched.postprocess(batch, model.run(batch))
    assert long.num_output_tokens == 1 and short.num_output_tokens == 1
    drive(sched, model)
    assert long.output_token_ids == run_alone(long)
    assert short.output_token_ids == run_alone(short)


def test_chunked_prefill_fills_the_budget_behind_a_short_prompt():
    sched = make_scheduler(budget=32, chunked=True)
    a = make_seq(0, [1] * 20, max_tokens=3)
    b = make_seq(1, list(range(100, 130)), max_tokens=3)
    sched.add(a)
    sched.add(b)
    model = FakeModel(sched.block_manager)
    batch = sched.schedule()
    assert batch.seqs == [a, b] and batch.num_new_tokens == [20, 12]
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    assert a.output_token_ids == run_alone(a) and b.output_token_ids == run_alone(b)


def test_without_chunking_a_prompt_that_does_not_fit_the_budget_waits():
    sched = make_scheduler(budget=32, max_model_len=32)
    a = make_seq(0, [1] * 20, max_tokens=3)
    b = make_seq(1, list(range(100, 130)), max_tokens=2)
    sched.add(a)
    sched.add(b)
    model = FakeModel(sched.block_manager)
    batch = sched.schedule()
    assert batch.seqs == [a] and batch.num_new_tokens == [20]
    sched.postprocess(batch, model.run(batch))
    batch = sched.schedule()  # the next step has the whole budget for b
    assert batch.is_prefill and batch.seqs == [b] and batch.num_new_tokens == [30]
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    assert a.output_token_ids == run_alone(a, 32) and b.output_token_ids == run_alone(b, 32)


def test_without_chunking_a_prompt_longer_than_the_budget_is_never_split():
    sched = make_scheduler(budget=16, max_model_len=64)
    sched.add(make_seq(0, list(range(40))))
    with pytest.raises(RuntimeError, match="nothing to run"):
        sched.schedule()


# ---------------------------------------------------------------------------------- stop conditions


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_eos_stops_unless_ignore_eos(kind):
    sched = make_scheduler(kind, eos=(7,))
    stops = make_seq(0, [1, 2, 3], max_tokens=10, ignore_eos=False)
    keeps_going = make_seq(1, [1, 2, 3], max_tokens=10, ignore_eos=True)
    sched.add(stops)
    sched.add(keeps_going)
    drive(sched, FakeModel(sched.block_manager, token_fn=lambda ctx: 7))
    assert stops.output_token_ids == [7]
    assert keeps_going.output_token_ids == [7] * 10


def test_eos_is_only_the_configured_tokens():
    sched = make_scheduler(eos=(8,))
    seq = make_seq(0, [1, 2], max_tokens=5, ignore_eos=False)
    sched.add(seq)
    drive(sched, FakeModel(sched.block_manager, token_fn=lambda ctx: 7))
    assert seq.output_token_ids == [7] * 5


@pytest.mark.parametrize("kind", SCHEDULERS)
@pytest.mark.parametrize("max_tokens", [1, 2, 9])
def test_max_tokens_respected(kind, max_tokens):
    sched = make_scheduler(kind)
    seqs = [make_seq(i, [50 + i] * (3 + i), max_tokens=max_tokens + i) for i in range(3)]
    for s in seqs:
        sched.add(s)
    drive(sched)
    assert [s.num_output_tokens for s in seqs] == [max_tokens + i for i in range(3)]


@pytest.mark.parametrize("kind", SCHEDULERS)
def test_max_model_len_respected(kind):
    sched = make_scheduler(kind, max_model_len=14, budget=14)
    seq = make_seq(0, list(range(10)), max_tokens=100)
    short = make_seq(1, list(range(20, 33)), max_tokens=100)  # 13 tokens: room for one more
    sched.add(seq)
    sched.add(short)
    drive(sched)
    assert len(seq) == 14 and seq.num_output_tokens == 4
    assert len(short) == 14 and short.num_output_tokens == 1
    assert seq.output_token_ids == run_alone(seq, 14)


# --------------------------------------------------------------------------------------- preemption


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
    assert sched.num_preemptions > 0
    assert sum(s.num_preemptions for s in seqs) == sched.num_preemptions
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
    assert b.num_preemptions == 1 and sched.num_preemptions == 1
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
    assert sched.num_preemptions >= 1
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
    assert b.num_cached_tokens == 16 and sched.block_manager.cached_tokens == 16
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
    assert sched.block_manager.cached_tokens == 28
    for s in (a, b, same):
        assert s.output_token_ids == run_alone(s)
