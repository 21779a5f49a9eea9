"""scheduler.policy=fcfs|priority|sjf: the order waiting prompts start in, the running sequence that is
preempted, the prompt part-way through its chunks kept first, and the refusals naming the key."""

from __future__ import annotations

import pytest
from scheduler_harness import FakeModel, drive, make_scheduler, make_seq, run_alone

from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.scheduler.waiting import ArrivalQueue, RankedQueue
from allmos.sequence import SequenceStatus
from allmos.validation import validate

RUNNING = ["continuous", "mixed"]


def started_order(kind, policy, seqs, **limits) -> list[int]:
    """The seq ids in the order their prompts first ran, one prompt per step (max_num_seqs=1)."""
    sched = make_scheduler(kind, policy=policy, max_num_seqs=1, **limits)
    for seq in seqs:
        sched.add(seq)
    order = []
    for batch in drive(sched):
        order += [s.seq_id for s in batch.seqs if s.seq_id not in order]
    for seq in seqs:
        assert seq.output_token_ids == run_alone(seq)
    return order


@pytest.mark.parametrize("kind", RUNNING)
def test_priority_starts_the_lowest_value_first_ties_in_arrival_order(kind):
    priorities = [2, 0, 1, 0, -1]
    seqs = [make_seq(i, [10 + i] * 4, max_tokens=2, priority=p) for i, p in enumerate(priorities)]
    assert started_order(kind, "priority", seqs) == [4, 1, 3, 2, 0]


@pytest.mark.parametrize("kind", RUNNING)
def test_sjf_starts_the_shortest_prompt_first(kind):
    lengths = [9, 3, 12, 3, 5]
    seqs = [make_seq(i, [20 + i] * n, max_tokens=2) for i, n in enumerate(lengths)]
    assert started_order(kind, "sjf", seqs) == [1, 3, 4, 0, 2]


@pytest.mark.parametrize("kind", RUNNING + ["static"])
def test_fcfs_starts_in_arrival_order_whatever_the_priority_or_length(kind):
    seqs = [make_seq(i, [30 + i] * (9 - i), max_tokens=2, priority=-i) for i in range(5)]
    assert started_order(kind, "fcfs", seqs) == [0, 1, 2, 3, 4]


def preempted_ids(kind, policy, seqs) -> list[int]:
    """Three sequences of 8 prompt tokens (2 blocks each) growing to 11 tokens, in 7 blocks of 4: when
    the third block is due, one must go."""
    sched = make_scheduler(kind, policy=policy, num_blocks=7, block_size=4, budget=64, max_model_len=64)
    for seq in seqs:
        sched.add(seq)
    victims = []

    def watch(step, batch, finished):
        victims.extend(s.seq_id for s in seqs if s.status is SequenceStatus.WAITING and s.num_output_tokens)

    drive(sched, on_step=watch)
    assert sched.stats.counts["preemptions"] > 0
    for seq in seqs:
        assert seq.output_token_ids == run_alone(seq, 64)
    return list(dict.fromkeys(victims))


@pytest.mark.parametrize("kind", RUNNING)
def test_the_victim_follows_the_policy(kind):
    def three(priorities=(0, 0, 0), extra=(0, 0, 0)):
        return [
            make_seq(i, [40 + i] * (8 - e), max_tokens=3 + e, priority=p)
            for i, (p, e) in enumerate(zip(priorities, extra))
        ]

    assert preempted_ids(kind, "fcfs", three())[0] == 2  # the latest admitted
    assert preempted_ids(kind, "priority", three(priorities=(0, 5, 1)))[0] == 1  # the highest value
    # sjf: seq 2 has 7 prompt tokens (one fewer than the others) and one token more to generate
    assert preempted_ids(kind, "sjf", three(extra=(0, 0, 1)))[0] == 1  # the longest, ties in arrival order


@pytest.mark.parametrize("kind", RUNNING)
@pytest.mark.parametrize("policy", ["priority", "sjf"])
def test_a_prompt_part_way_through_its_chunks_stays_first(kind, policy):
    """A better-ranked request that arrives while a long prompt is being chunked waits for its last chunk."""
    sched = make_scheduler(kind, policy=policy, budget=8, chunked=True, max_model_len=64)
    long = make_seq(0, list(range(50, 70)), max_tokens=2, priority=3)  # 20 tokens: 8 + 8 + 4
    sched.add(long)
    model = FakeModel(sched.block_manager)
    batch = sched.schedule()
    sched.postprocess(batch, model.run(batch))
    better = make_seq(1, [7, 7], max_tokens=2, priority=-3)
    sched.add(better)
    assert list(sched.waiting) == [long, better] and sched.waiting.head() is long
    batch = sched.schedule()
    assert batch.seqs[0] is long and batch.num_new_tokens[0] == 8
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    assert long.output_token_ids == run_alone(long) and better.output_token_ids == run_alone(better)


@pytest.mark.parametrize("policy", ["priority", "sjf"])
def test_a_whole_prompt_that_missed_a_step_keeps_its_blocks_and_stays_first(policy):
    """Without chunking, a prompt whose blocks are reserved but which does not fit what is left of a
    step's budget goes first in the next step. Found by test_properties.py under sjf: requests ranked
    before it kept arriving and starting, while its blocks sat idle in the middle of the queue."""
    sched = make_scheduler("continuous", policy=policy, budget=8, max_model_len=8, block_size=2)
    short = make_seq(0, [5] * 3, max_tokens=1, priority=0)
    waiting = make_seq(1, [6] * 6, max_tokens=1, priority=1)  # 6 tokens: 5 are left after `short`
    for seq in (short, waiting):
        sched.add(seq)
    model = FakeModel(sched.block_manager)
    batch = sched.schedule()
    assert batch.seqs == [short] and waiting.block_table  # it reserved its blocks, then missed the step
    sched.postprocess(batch, model.run(batch))
    better = make_seq(2, [7] * 3, max_tokens=1, priority=-1)  # ranked first by either policy
    sched.add(better)
    assert sched.waiting.head() is waiting and list(sched.waiting) == [waiting, better]
    batch = sched.schedule()
    assert batch.seqs[0] is waiting
    sched.postprocess(batch, model.run(batch))
    drive(sched, model)
    for seq in (short, waiting, better):
        assert seq.output_token_ids == run_alone(seq, 8)


@pytest.mark.parametrize(
    "queue,head,rest",
    [(ArrivalQueue(), 0, [1, 3, 9]), (RankedQueue(lambda s: (len(s), s.seq_id)), 3, [9, 1, 0])],
)
def test_a_held_prompt_stays_first_and_any_request_can_be_removed(queue, head, rest):
    seqs = [make_seq(i, [1] * (5 - i)) for i in range(4)]  # 5, 4, 3 and 2 tokens
    for seq in seqs:
        queue.push(seq)
    assert queue.head().seq_id == head
    queue.hold(queue.head())
    queue.push(make_seq(9, [1]))  # the shortest, and the latest
    assert [s.seq_id for s in queue][0] == head and len(queue) == 5
    queue.remove(seqs[2])
    assert seqs[2] not in queue and len(queue) == 4
    assert [queue.pop_head().seq_id for _ in range(4)] == [head] + rest
    assert not queue


def test_only_the_head_can_be_held():
    queue = RankedQueue(lambda s: (len(s), s.seq_id))
    longer, shorter = make_seq(0, [1] * 3), make_seq(1, [1] * 2)
    queue.push(longer)
    queue.push(shorter)
    with pytest.raises(RuntimeError, match="not the head"):
        queue.hold(longer)


def engine_config(**options) -> EngineConfig:
    return EngineConfig.create(architecture={}, random_weights="always", device="cpu", **options)


@pytest.mark.parametrize("policy", ["priority", "sjf"])
def test_static_refuses_other_policies_naming_the_key(policy):
    with pytest.raises(ConfigError, match=r"^scheduler.policy: scheduler=static forms its cohorts in arrival order"):
        validate(engine_config(scheduler={"name": "static", "policy": policy}))


@pytest.mark.parametrize("kind", ["continuous", "mixed", "static"])
def test_an_unknown_policy_is_refused_naming_the_key(kind):
    with pytest.raises(ConfigError, match=r"^scheduler.policy: 'lifo' is unknown; choose one of: fcfs, priority, sjf"):
        validate(engine_config(scheduler={"name": kind, "policy": "lifo"}))
