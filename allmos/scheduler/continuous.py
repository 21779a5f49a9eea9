"""`continuous`: continuous batching. A step is either a prefill step (waiting sequences, up to
`max_num_batched_tokens` tokens; with chunked prefill the last one may get a partial chunk) or a
decode step (one token for every running sequence). When blocks run out, the running sequence the
policy ranks last (fcfs: the most recently admitted) is preempted and later recomputed. Waiting
sequences start in the policy's order (`scheduler.policy`, policy.py). With async_scheduling, its
look-ahead policy (look_ahead.py) schedules the step after a running one.
"""

from __future__ import annotations

from collections import deque

from allmos.batch import ScheduledBatch, StepOutput
from allmos.registry import register
from allmos.scheduler.base import Scheduler
from allmos.scheduler.look_ahead import LookAhead
from allmos.scheduler.policy import SchedulerOptions
from allmos.sequence import Sequence, SequenceStatus


@register("scheduler", "continuous", options=SchedulerOptions)
class ContinuousScheduler(Scheduler):
    look_ahead = LookAhead

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.waiting = self.policy.waiting_queue()
        self.running: deque[Sequence] = deque()

    def add(self, seq: Sequence) -> None:
        self.waiting.push(seq)

    def has_unfinished(self) -> bool:
        return bool(self.waiting or self.running)

    def admissible(self, seq: Sequence) -> bool:
        return True

    def schedule(self) -> ScheduledBatch:
        batch = self.schedule_prefill()
        if batch is None:
            batch = self.schedule_decode()
        if batch is None:
            raise RuntimeError("the scheduler found nothing to run while requests remain (KV cache too small?)")
        return batch

    def schedule_prefill(self, budget: int | None = None) -> ScheduledBatch | None:
        """Waiting prompts in the policy's order, up to `budget` tokens (default: max_num_batched_tokens)."""
        budget = self.limits.max_num_batched_tokens if budget is None else budget
        seqs, counts = [], []
        # A fully scheduled prompt joins `running` at once, so `running` already counts it; only a
        # partial chunk is not in `running`, and it ends the loop.
        while self.waiting and budget > 0 and len(self.running) < self.limits.max_num_seqs:
            seq = self.waiting.head()
            if not self.admissible(seq) or not self.reserve_prompt_blocks(seq):
                break
            chunk = min(seq.num_uncomputed_tokens, budget)
            if chunk < seq.num_uncomputed_tokens and not self.limits.chunked_prefill:
                # its blocks are reserved: it goes first in the next step, whose whole budget it fits, so
                # that no request ranked before it later (sjf, priority) leaves them idle
                self.waiting.hold(seq)
                break
            seqs.append(seq)
            counts.append(chunk)
            budget -= chunk
            if chunk < seq.num_uncomputed_tokens:
                self.waiting.hold(seq)  # the rest of this prompt goes first in a later step
                break
            self.waiting.pop_head()
            seq.status = SequenceStatus.RUNNING
            self.running.append(seq)
        return ScheduledBatch(seqs, counts, is_prefill=True) if seqs else None

    def reserve_prompt_blocks(self, seq: Sequence) -> bool:
        if seq.block_table:
            return True
        if not self.block_manager.can_allocate(seq, len(seq)):
            return False
        self.block_manager.allocate(seq, len(seq))
        return True

    def schedule_decode(self) -> ScheduledBatch | None:
        scheduled: list[Sequence] = []
        self.running = self.policy.order_running(self.running)
        while self.running:
            seq = self.running.popleft()
            if self.make_room_for(seq):
                self.block_manager.allocate(seq, len(seq))
                scheduled.append(seq)
        self.running.extend(scheduled)
        return ScheduledBatch(scheduled, [1] * len(scheduled), is_prefill=False) if scheduled else None

    def prefill_would_start(self) -> bool:
        """Whether the head of the waiting queue could be admitted now."""
        if not self.waiting or len(self.running) >= self.limits.max_num_seqs:
            return False
        head = self.waiting.head()
        return self.admissible(head) and (bool(head.block_table) or self.block_manager.can_allocate(head, len(head)))

    def make_room_for(self, seq: Sequence) -> bool:
        """Preempt the last running sequences (the policy's order) until `seq` can grow; False if `seq`
        itself went."""
        while not self.block_manager.can_allocate(seq, len(seq)):
            victim = self.running.pop() if self.running else seq
            self.preempt(victim)
            if victim is seq:
                return False
        return True

    def preempt(self, seq: Sequence) -> None:
        self.block_manager.free(seq)
        seq.status = SequenceStatus.WAITING
        seq.num_preemptions += 1
        self.stats.count("preemptions")
        self.waiting.requeue(seq)

    def postprocess(self, batch: ScheduledBatch, output: StepOutput) -> list[Sequence]:
        finished = []
        for i, (seq, count, token) in enumerate(zip(batch.seqs, batch.num_new_tokens, output.token_ids)):
            if seq.is_finished:
                continue  # ended (end-of-sequence token) in the step before this look-ahead one
            seq.num_computed_tokens += count
            self.block_manager.mark_computed(seq)
            if seq.num_computed_tokens < len(seq):
                continue  # a partial prefill chunk: its sampled token is not used
            seq.token_ids.append(token)
            if output.top_logprobs is not None and seq.params.logprobs:
                seq.top_logprobs.append(output.top_logprobs[i][: seq.params.logprobs])
            if self.is_done(seq, token):
                self.finish(seq)
                finished.append(seq)
        return finished

    def is_done(self, seq: Sequence, token: int) -> bool:
        if not seq.params.ignore_eos and token in self.eos_token_ids:
            return True
        return self.done_by_length(seq, len(seq))

    def done_by_length(self, seq: Sequence, length: int) -> bool:
        """Whether `seq` is finished once it holds `length` tokens, whatever they are."""
        outputs = length - seq.num_prompt_tokens
        return outputs >= seq.params.max_tokens or length >= self.limits.max_model_len

    def finish(self, seq: Sequence) -> None:
        seq.status = SequenceStatus.FINISHED
        self.block_manager.free(seq)
        self.running.remove(seq)

    def abort(self, seq: Sequence) -> None:
        """Finish `seq` wherever it is (after a failed step, or when its caller gives up on it); a failed
        step may not have written its blocks' KV (the block manager knows what that means for sharing)."""
        for queue in (self.waiting, self.running):
            if seq in queue:
                queue.remove(seq)
        self.block_manager.free_after_failure(seq)
        seq.status = SequenceStatus.FINISHED
