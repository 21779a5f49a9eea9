"""Checks of one scheduled step that depend on the scheduler and its policy (scheduler_harness.drive runs
them every step): under scheduler=mixed, decode rows first and the budget over every row; under a
ranked policy (priority, sjf), prompts start in rank order and the worst-ranked running sequences are
the ones preempted."""

from __future__ import annotations

from allmos.scheduler.mixed import MixedScheduler
from allmos.scheduler.policy import RankOrder
from allmos.sequence import SequenceStatus


def check_step(sched, batch, running_before, waiting_before, held_before) -> None:
    """`*_before`: the running and waiting sequences and the held prompt just before `schedule()`."""
    victims = [s for s in running_before if s.status is SequenceStatus.WAITING]
    decodes = [s for s in batch.seqs if any(s is r for r in running_before)]
    if isinstance(sched, MixedScheduler):
        check_mixed_step(sched, batch, running_before, decodes, victims)
    if isinstance(sched.policy, RankOrder):
        started = [s for s in batch.seqs if s is not held_before and any(s is w for w in waiting_before)]
        check_rank_order(sched, sched.policy.rank, started, decodes, victims)


def check_mixed_step(sched, batch, running_before, decodes, victims) -> None:
    budget = sched.limits.max_num_batched_tokens
    assert batch.num_tokens <= budget, f"the step computes {batch.num_tokens} tokens, over the budget {budget}"
    assert batch.seqs[: len(decodes)] == decodes, "decode rows come first"
    assert (batch.num_decode_rows if batch.is_prefill else len(batch)) == len(decodes)
    assert batch.is_prefill == (len(decodes) < len(batch)), "a step of decode rows only is a decode step"
    assert batch.num_new_tokens[: len(decodes)] == [1] * len(decodes)
    served = [s for s in running_before if s.status is SequenceStatus.RUNNING]
    assert len(served) == len(decodes), "every running sequence not preempted decodes"
    if victims and decodes:
        assert len(batch) == len(decodes), "no prompt starts in a step that preempted"


def check_rank_order(sched, rank, started, decodes, victims) -> None:
    for victim in victims:
        assert all(rank(d) < rank(victim) for d in decodes), "a better-ranked sequence was preempted"
    for seq in started:
        passed_over = [w.seq_id for w in sched.waiting if w is not seq and rank(w) < rank(seq)]
        assert not passed_over, f"sequence {seq.seq_id} started before better-ranked waiting {passed_over}"
