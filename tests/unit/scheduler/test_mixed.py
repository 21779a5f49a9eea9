"""scheduler=mixed: decode rows first and prompt chunks in the rest of the budget, in one forward; what it
refuses; async look-ahead only after decode-only steps; the engine's step trace and token counts."""

from __future__ import annotations

import pytest
from scheduler_harness import FakeModel, drive, make_scheduler, make_seq, run_alone

from allmos import LLM, SamplingParams
from allmos.attention.sdpa import SdpaBackend
from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.registry import CheckContext, lookup
from allmos.scheduler.mixed import MixedLookAhead
from allmos.validation import validate


def running_pair(sched, model):
    """Two short prompts admitted and prefilled: both decode from the next step on."""
    pair = [make_seq(0, [1, 2, 3], max_tokens=20), make_seq(1, [4, 5], max_tokens=20)]
    for seq in pair:
        sched.add(seq)
    batch = sched.schedule()
    assert batch.kind == "prefill" and batch.seqs == pair
    sched.postprocess(batch, model.run(batch))
    return pair


def test_a_long_prompt_is_chunked_into_the_steps_of_running_decodes():
    sched = make_scheduler("mixed", budget=8, max_model_len=64)
    model = FakeModel(sched.block_manager)
    pair = running_pair(sched, model)
    long = make_seq(2, list(range(40, 60)), max_tokens=3)  # 20 tokens: chunks of 6, 6, 6, 2
    sched.add(long)
    for computed in (6, 12, 18):
        batch = sched.schedule()
        assert batch.kind == "mixed" and batch.num_decode_rows == 2
        assert batch.seqs == pair + [long] and batch.num_new_tokens == [1, 1, 6]
        assert batch.num_tokens == 8 and batch.num_prefill_tokens == 6
        sched.postprocess(batch, model.run(batch))
        assert long.num_computed_tokens == computed and long.num_output_tokens == 0
    batch = sched.schedule()
    assert batch.seqs == pair + [long] and batch.num_new_tokens == [1, 1, 2]
    sched.postprocess(batch, model.run(batch))
    assert long.num_output_tokens == 1
    batch = sched.schedule()  # nothing waits: a decode step, as continuous would run it
    assert batch.kind == "decode" and batch.seqs == pair + [long] and batch.num_decode_rows == 0
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    for seq in pair + [long]:
        assert seq.output_token_ids == run_alone(seq, 64)


def test_continuous_stalls_the_decodes_while_the_prompt_runs():
    sched = make_scheduler("continuous", budget=8, max_model_len=64, chunked=True)
    model = FakeModel(sched.block_manager)
    running_pair(sched, model)
    long = make_seq(2, list(range(40, 60)), max_tokens=3)
    sched.add(long)
    batch = sched.schedule()
    assert batch.kind == "prefill" and batch.seqs == [long] and batch.num_new_tokens == [8]


def test_mixed_chunks_prompts_even_without_chunked_prefill():
    sched = make_scheduler("mixed", budget=8, max_model_len=64, chunked=False)
    sched.add(make_seq(0, list(range(40, 60)), max_tokens=2))
    batch = sched.schedule()
    assert batch.num_new_tokens == [8]
    assert sched.limits.chunked_prefill


def test_a_step_that_preempts_starts_no_prompt():
    # two prompts of 4 tokens (1 block each) in 3 blocks; both need a second block at the same step
    sched = make_scheduler("mixed", num_blocks=3, block_size=4, budget=32, max_model_len=32)
    model = FakeModel(sched.block_manager)
    a, b = make_seq(0, [1] * 4, max_tokens=6), make_seq(1, [2] * 4, max_tokens=6)
    sched.add(a)
    sched.add(b)
    batch = sched.schedule()
    sched.postprocess(batch, model.run(batch))
    late = make_seq(2, [3], max_tokens=2)  # one token: it would fit the budget and a block
    sched.add(late)
    batch = sched.schedule()
    assert sched.stats.counts["preemptions"] == 1 and batch.kind == "decode" and batch.seqs == [a]
    assert list(sched.waiting) == [b, late]
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    for seq in (a, b, late):
        assert seq.output_token_ids == run_alone(seq, 32)


def test_look_ahead_only_after_decode_only_steps():
    sched = make_scheduler("mixed", budget=8, max_model_len=64)
    model = FakeModel(sched.block_manager)
    running_pair(sched, model)
    decode = sched.schedule()
    assert decode.kind == "decode"
    ahead = MixedLookAhead(sched).schedule(decode)
    assert ahead is not None and ahead.ahead_rows == [0, 1] and ahead.kind == "decode"
    sched.postprocess(decode, model.run(decode))
    sched.add(make_seq(2, list(range(40, 50)), max_tokens=2))
    assert MixedLookAhead(sched).schedule(ahead) is None  # a prompt could start: the next step mixes it in
    sched.postprocess(ahead, model.run(ahead))
    mixed = sched.schedule()
    assert mixed.kind == "mixed"
    assert MixedLookAhead(sched).schedule(mixed) is None  # its next step decodes rows whose tokens are unknown


def config(**options) -> EngineConfig:
    return EngineConfig.create(architecture={}, random_weights="always", device="cpu", **options)


def test_mixed_needs_no_budget_as_long_as_the_longest_prompt():
    validate(config(scheduler="mixed", max_model_len=256, max_num_batched_tokens=64))
    with pytest.raises(ConfigError, match="^max_num_batched_tokens: 64 < max_model_len=256"):
        validate(config(scheduler="continuous", max_model_len=256, max_num_batched_tokens=64))


class PrefillOnlyBackend(SdpaBackend):
    """A backend whose prefill path could not take decode rows (none of the shipped ones)."""

    serves_mixed_steps = False


def test_an_attention_backend_that_cannot_serve_mixed_steps_is_refused_naming_the_switch():
    options = lookup("scheduler", "mixed").options(name="mixed")
    where = CheckContext("cpu", 16, PrefillOnlyBackend)
    with pytest.raises(ConfigError, match="^scheduler: scheduler=mixed puts decode rows into prefill steps"):
        lookup("scheduler", "mixed").cls.check(options, where)
    lookup("scheduler", "continuous").cls.check(options, where)  # the other schedulers never mix
    for name in ("sdpa", "triton", "flash"):
        lookup("scheduler", "mixed").cls.check(options, CheckContext("cpu", 256, lookup("attention", name).cls))


PROMPTS = [[5, 6, 7], [8, 9], list(range(20, 60)), [11, 12, 13, 14]]


def test_a_mixed_step_runs_decode_rows_and_prompt_chunks_in_one_forward(tiny_qwen3):
    options = dict(dtype="float64", block_size=8, num_kv_blocks=64, max_model_len=128, prefix_caching=False)
    options |= dict(max_num_batched_tokens=12)
    params = SamplingParams(temperature=0, max_tokens=8, ignore_eos=True)
    alone = LLM(tiny_qwen3, chunked_prefill=True, **options)
    expected = [o["token_ids"] for o in alone.generate(PROMPTS, params, use_tqdm=False)]
    llm = LLM(tiny_qwen3, scheduler="mixed", async_scheduling=False, **options)
    steps = []  # (batch, the query and context lengths of each forward it ran)
    runner, graphs = llm.engine.runner, llm.engine.runner.graph_runner
    launch, forward = runner.launch, graphs.forward

    def launching(batch, prev=None):
        steps.append((batch, []))
        return launch(batch, prev)

    def forwarding(input_ids, positions, meta):
        steps[-1][1].append((meta.is_prefill, list(meta.query_lens_host), list(meta.context_lens_host)))
        return forward(input_ids, positions, meta)

    runner.launch, graphs.forward = launching, forwarding
    assert [o["token_ids"] for o in llm.generate(PROMPTS, params, use_tqdm=False)] == expected
    assert [b.kind for b, _ in steps] == [r.kind for r in llm.engine.stats.trace]
    mixed = [(batch, forwards) for batch, forwards in steps if batch.kind == "mixed"]
    assert len(mixed) >= 3  # the long prompt's chunks ran beside the short ones' decodes
    for batch, forwards in mixed:
        assert len(forwards) == 1, "a mixed step is one forward"
        is_prefill, query_lens, context_lens = forwards[0]
        rows = batch.num_decode_rows
        assert is_prefill and query_lens == batch.num_new_tokens and sum(query_lens) <= 12
        assert 0 < rows < len(batch) and query_lens[:rows] == [1] * rows
        assert all(c > 1 for c in context_lens[:rows])  # one query over the whole cached context
        assert all(seq.num_prompt_tokens > 2 for seq in batch.seqs[rows:])  # prompt chunks after them
    prompt_tokens = sum(map(len, PROMPTS))
    assert llm.engine.stats.counts["prefill_tokens_computed"] == prompt_tokens  # decode rows are no prompt tokens
    assert llm.engine.counters()["eager_forwards"] == len(steps)
