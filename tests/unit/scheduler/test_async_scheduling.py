"""async_scheduling=true: the next decode step is queued before the current one's tokens reach the
host. Outputs must not change, whatever ends a sequence (length, end-of-sequence token, preemption)."""

import pytest

from allmos import LLM, SamplingParams
from allmos.batch import ScheduledBatch
from allmos.block_manager.paged import PagedBlockManager
from allmos.block_manager.prefix_caching import PrefixCachingBlockManager
from allmos.registry import BuildContext, Limits
from allmos.scheduler.continuous import ContinuousScheduler
from allmos.scheduler.look_ahead import LookAhead
from allmos.sequence import Sequence

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], list(range(20, 60)), [3, 4], list(range(100, 133))]


def look_ahead(sched, running):
    return LookAhead(sched).schedule(running)


def make_llm(folder, async_scheduling, **options):
    settings = dict(dtype="float64", max_model_len=256, num_kv_blocks=64, block_size=8) | options
    return LLM(folder, async_scheduling=async_scheduling, **settings)


def token_ids(llm, params):
    return [o["token_ids"] for o in llm.generate(PROMPTS, params, use_tqdm=False)]


def test_sequences_of_different_lengths_match_sync(tiny_qwen3):
    params = [SamplingParams(temperature=0, max_tokens=n, ignore_eos=True) for n in (3, 17, 9, 30)]
    sync = token_ids(make_llm(tiny_qwen3, False), params)
    llm = make_llm(tiny_qwen3, True)
    assert token_ids(llm, params) == sync
    assert [len(t) for t in sync] == [3, 17, 9, 30]
    counters = llm.engine.counters()
    assert counters["ahead_steps"] > 20  # most decode steps were queued ahead
    assert llm.engine.block_manager.num_used_blocks == 0


def test_end_of_sequence_during_a_look_ahead_step(tiny_qwen3):
    """A sequence that samples its end token has a look-ahead step in flight already: that step's
    token for it is dropped and its blocks are freed once."""
    params = SamplingParams(temperature=0, max_tokens=20)
    free_run = token_ids(make_llm(tiny_qwen3, False), SamplingParams(temperature=0, max_tokens=20, ignore_eos=True))
    eos = free_run[1][5]
    outputs = {}
    for mode in (False, True):
        llm = make_llm(tiny_qwen3, mode)
        llm.engine.scheduler.eos_token_ids = {eos}
        outputs[mode] = token_ids(llm, params)
        assert llm.engine.block_manager.num_used_blocks == 0
    assert outputs[True] == outputs[False]
    assert outputs[True][1][-1] == eos and len(outputs[True][1]) == free_run[1].index(eos) + 1


def test_temperature_sampling_is_seeded_the_same(tiny_qwen3):
    params = SamplingParams(temperature=0.8, max_tokens=12, ignore_eos=True)
    assert token_ids(make_llm(tiny_qwen3, True, seed=3), params) == token_ids(
        make_llm(tiny_qwen3, False, seed=3), params
    )


def blocks(cls, num_blocks: int, block_size: int = 4):
    return cls(None, BuildContext(num_blocks=num_blocks, block_size=block_size))


def scheduler_with(num_blocks: int, max_num_seqs: int = 8) -> ContinuousScheduler:
    limits = Limits(max_num_seqs, 64, 64, False)
    return ContinuousScheduler(None, BuildContext(limits=limits, block_manager=blocks(PagedBlockManager, num_blocks)))


def decode_batch(sched: ContinuousScheduler, *lengths: int) -> ScheduledBatch:
    seqs = []
    for i, n in enumerate(lengths):
        seq = Sequence(i, list(range(n)), SamplingParams(max_tokens=8))
        sched.add(seq)
        seqs.append(seq)
    assert sched.schedule().is_prefill
    for seq in seqs:  # as if the prefill ran and sampled one token each
        seq.num_computed_tokens = len(seq)
        seq.token_ids.append(1)
    return sched.schedule()


def test_look_ahead_grows_blocks_and_points_at_the_running_rows():
    sched = scheduler_with(num_blocks=16)
    running = decode_batch(sched, 3, 4)  # lengths 4 and 5 after the first token
    ahead = look_ahead(sched, running)
    assert ahead.ahead_rows == [0, 1] and not ahead.is_prefill
    assert [len(s.block_table) for s in ahead.seqs] == [2, 2]  # room for 6 tokens each


def test_no_look_ahead_when_a_prompt_could_start_or_blocks_run_out():
    sched = scheduler_with(num_blocks=16)
    running = decode_batch(sched, 3, 4)
    sched.add(Sequence(9, [1, 2, 3], SamplingParams()))
    assert look_ahead(sched, running) is None  # the waiting prompt goes first
    tight = scheduler_with(num_blocks=3)
    assert look_ahead(tight, decode_batch(tight, 3, 4)) is None  # 2 more blocks needed, 1 free
    prefill = ScheduledBatch([Sequence(0, [1], SamplingParams())], [1], is_prefill=True)
    assert look_ahead(tight, prefill) is None


def test_look_ahead_leaves_out_sequences_that_end_by_length():
    sched = scheduler_with(num_blocks=16)
    running = decode_batch(sched, 3, 4)
    running.seqs[0].params = SamplingParams(max_tokens=2)  # its next token is its last
    ahead = look_ahead(sched, running)
    assert ahead.ahead_rows == [1]


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_async_with_preemption_and_prefix_caching(tiny_qwen3, prefix_caching):
    params = SamplingParams(temperature=0, max_tokens=24, ignore_eos=True)
    sync = token_ids(make_llm(tiny_qwen3, False, prefix_caching=prefix_caching), params)
    llm = LLM(
        tiny_qwen3,
        dtype="float64",
        max_model_len=256,
        num_kv_blocks=10,
        block_size=8,
        async_scheduling=True,
        prefix_caching=prefix_caching,
    )
    assert token_ids(llm, params) == sync
    assert llm.engine.stats.counts["preemptions"] > 0


def prefill_scheduler(block_manager, chunked_prefill=False) -> ContinuousScheduler:
    limits = Limits(8, 8, 64, chunked_prefill)  # 8 tokens per step
    return ContinuousScheduler(None, BuildContext(limits=limits, block_manager=block_manager))


def test_a_prefill_step_is_scheduled_ahead_of_a_running_prefill_step():
    sched = prefill_scheduler(blocks(PagedBlockManager, 16))
    for i in range(3):
        sched.add(Sequence(i, list(range(10 * i, 10 * i + 5)), SamplingParams()))
    running = sched.schedule()
    assert running.is_prefill and [s.seq_id for s in running.seqs] == [0]
    ahead = look_ahead(sched, running)
    assert ahead.is_prefill and ahead.ahead_rows is None and [s.seq_id for s in ahead.seqs] == [1]
    assert look_ahead(sched, ahead) is not None  # the third prompt after the second
    assert look_ahead(sched, look_ahead(sched, ahead) or ahead) is None  # nothing left to start


def test_no_prefill_ahead_of_a_partial_chunk():
    sched = prefill_scheduler(blocks(PagedBlockManager, 16), chunked_prefill=True)
    sched.add(Sequence(0, list(range(12)), SamplingParams()))
    running = sched.schedule()
    assert running.num_new_tokens == [8]
    assert look_ahead(sched, running) is None  # the next chunk starts where this one ends


def test_a_prefill_ahead_hits_the_blocks_the_running_step_fills():
    """The normal schedule would find the running step's full blocks registered: so must the look-ahead."""
    bm = blocks(PrefixCachingBlockManager, 16)
    sched = prefill_scheduler(bm)
    shared = list(range(40, 44))
    sched.add(Sequence(0, shared + [1, 2, 3, 4], SamplingParams()))  # the whole budget of a step
    sched.add(Sequence(1, shared + [9], SamplingParams()))
    running = sched.schedule()
    assert [s.seq_id for s in running.seqs] == [0]
    ahead = look_ahead(sched, running)
    assert ahead.seqs[0].num_cached_tokens == 4
    assert ahead.seqs[0].block_table[0] == running.seqs[0].block_table[0]
    assert ahead.num_new_tokens == [1]


@pytest.mark.parametrize("prefix_caching", [False, True])
def test_prefill_steps_ahead_match_sync(tiny_qwen3, prefix_caching):
    """Many short prefill steps (8 tokens each), prompts sharing prefixes across steps."""
    prompts = [list(range(30, 46)) + [i] for i in range(5)] + [[7, 8, 9]]
    params = SamplingParams(temperature=0, max_tokens=6, ignore_eos=True)
    runs = {}
    for mode in (False, True):
        llm = make_llm(tiny_qwen3, mode, prefix_caching=prefix_caching, max_num_batched_tokens=24, max_model_len=24)
        runs[mode] = [o["token_ids"] for o in llm.generate(prompts, params, use_tqdm=False)], llm.engine
    (sync_tokens, sync_engine), (async_tokens, async_engine) = runs[False], runs[True]
    assert async_tokens == sync_tokens
    cached = [engine.counters()["cached_prompt_tokens"] for engine in (sync_engine, async_engine)]
    assert cached[0] == cached[1] and (cached[0] > 0) == prefix_caching
    prefill_steps = async_engine.stats.steps("prefill")
    assert prefill_steps >= 2
    assert async_engine.counters()["ahead_prefill_steps"] == prefill_steps - 1  # every one after the first
    assert sync_engine.counters()["ahead_prefill_steps"] == 0


def test_async_scheduling_is_refused_for_a_scheduler_without_a_look_ahead_policy(tiny_qwen3, monkeypatch):
    from allmos.config import EngineConfig
    from allmos.errors import ConfigError
    from allmos.validation import validate

    monkeypatch.setattr(ContinuousScheduler, "look_ahead", None)
    with pytest.raises(ConfigError, match="async_scheduling"):
        validate(EngineConfig.create(tiny_qwen3, async_scheduling=True))
    validate(EngineConfig.create(tiny_qwen3, async_scheduling=False))
