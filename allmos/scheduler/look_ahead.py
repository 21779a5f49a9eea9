"""Async scheduling (`async_scheduling=true`) as a scheduling policy: after a step is queued on the
device, schedule the step after it before its sampled tokens reach the host, so the host's bookkeeping
overlaps the device's work.

After a prefill step, the next prefill step (its prompts need none of the running step's tokens).
After a decode step, every sequence of it that will not finish by length, one position further, if
each can grow by a block without preemption and no waiting prompt could start now; the step's input
ids are the running step's sampled tokens, still on the device (`ahead_rows`). A sequence that then
samples an end-of-sequence token wastes its look-ahead token (dropped in postprocess).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from allmos.batch import ScheduledBatch

if TYPE_CHECKING:
    from allmos.scheduler.continuous import ContinuousScheduler


class LookAhead:
    def __init__(self, scheduler: ContinuousScheduler):
        self.scheduler = scheduler
        self.block_manager = scheduler.block_manager
        self.stats = scheduler.stats  # reports ahead_steps and ahead_prefill_steps

    def schedule(self, running: ScheduledBatch) -> ScheduledBatch | None:
        """The step after `running`, scheduled before `running`'s tokens are known; None when the next
        step must be scheduled normally, after postprocessing `running`."""
        ahead = self.after_prefill(running) if running.is_prefill else self.after_decode(running)
        if ahead is not None:
            self.stats.count("ahead_steps")
            self.stats.count("ahead_prefill_steps", int(ahead.is_prefill))
        return ahead

    def after_decode(self, running: ScheduledBatch) -> ScheduledBatch | None:
        scheduler = self.scheduler
        if scheduler.prefill_would_start():
            return None
        rows = [
            i
            for i, seq in enumerate(running.seqs)
            if not seq.is_finished and not scheduler.done_by_length(seq, len(seq) + 1)
        ]
        seqs = [running.seqs[i] for i in rows]
        needed = sum(self.block_manager.blocks_for(len(s) + 1) - len(s.block_table) for s in seqs)
        if not seqs or needed > self.block_manager.num_free_blocks:
            return None
        for seq in seqs:
            self.block_manager.allocate(seq, len(seq) + 1)
        return ScheduledBatch(seqs, [1] * len(seqs), is_prefill=False, ahead_rows=rows)

    def after_prefill(self, running: ScheduledBatch) -> ScheduledBatch | None:
        """None when `running` computes only part of a prompt (the next chunk starts where that one
        ends) or no prompt could start. The blocks `running` fills are registered first, as they would
        be after it: a later step runs after it on the device, so a prefix hit on them reads written KV."""
        partial = any(n < s.num_uncomputed_tokens for s, n in zip(running.seqs, running.num_new_tokens))
        if partial or not self.scheduler.prefill_would_start():
            return None
        for seq, count in zip(running.seqs, running.num_new_tokens):
            self.block_manager.mark_computed(seq, seq.num_computed_tokens + count)
        return self.scheduler.schedule_prefill()
