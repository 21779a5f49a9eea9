"""The schedulers' limits and stopping rules, driven by the fake model of scheduler_harness.py."""

from __future__ import annotations

import pytest
from scheduler_harness import (
    SCHEDULERS,
    FakeModel,
    drive,
    make_scheduler,
    make_seq,
    reference_output,
    run_alone,
)

from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence, SequenceStatus


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
