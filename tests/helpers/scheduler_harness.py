"""The scheduler tests' harness: the schedulers driven by a fake model that reads and writes a simulated paged KV cache.

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

from scheduler_checks import check_step

from allmos.batch import ScheduledBatch, StepOutput
from allmos.block_manager.paged import PagedBlockManager
from allmos.block_manager.prefix_caching import PrefixCachingBlockManager
from allmos.registry import BuildContext, Limits
from allmos.sampling_params import SamplingParams
from allmos.scheduler.continuous import ContinuousScheduler
from allmos.scheduler.mixed import MixedScheduler
from allmos.scheduler.policy import POLICIES, SchedulerOptions
from allmos.scheduler.static import StaticScheduler
from allmos.sequence import Sequence, SequenceStatus

EOS = 3
SCHEDULERS = {"continuous": ContinuousScheduler, "static": StaticScheduler, "mixed": MixedScheduler}
# every scheduler with every policy it accepts (static forms cohorts in arrival order only)
SCHEDULER_POLICIES = [
    (kind, policy) for kind in SCHEDULERS for policy in POLICIES if policy == "fcfs" or kind != "static"
]


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
    policy="fcfs",
):
    bm = (PrefixCachingBlockManager if prefix else PagedBlockManager)(
        None, BuildContext(num_blocks=num_blocks, block_size=block_size)
    )
    limits = Limits(max_num_seqs, budget, max_model_len, chunked)
    options = SchedulerOptions(name=kind, policy=policy)
    return SCHEDULERS[kind](options, BuildContext(limits=limits, block_manager=bm, eos_token_ids=frozenset(eos)))


def make_seq(seq_id, prompt, max_tokens=8, ignore_eos=True, priority=0):
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=ignore_eos)
    return Sequence(seq_id, prompt, params, priority=priority)


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
        before = (list(sched.running), list(sched.waiting), sched.waiting.held)
        batch = sched.schedule()
        check_batch(sched, batch)
        check_step(sched, batch, *before)
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
