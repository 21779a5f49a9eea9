"""`mixed`: one token budget per step, decodes first, prompt chunks in what is left, one forward
(Sarathi-Serve's stall-free batching; vLLM v1's scheduler).

Each step: every running sequence gets its next token, in the policy's order, preempting the policy's
last when blocks run out (as `continuous` does); then waiting prompts fill the rest of
`max_num_batched_tokens` in the policy's order. A prompt joins the running sequences only inside the
budget that their decode rows left, so they never outnumber the budget. Prompts are always
chunked (a prompt takes what is left and goes on in the next step, first in line), whatever
`chunked_prefill` says. A step with decode rows only stays a decode step (CUDA graphs replay it); a
step with any prompt row runs eagerly on the prefill path, its decode rows first (one query token over
its whole cached context, what a prefix-cache hit already asks of every attention backend).

A step that had to preempt starts no new prompt (blocks are short: the prompt would likely be
preempted next), unless it has no decode row at all. With async_scheduling, the step after a
decode-only step is scheduled ahead when no prompt could start; after a step with prompt rows, never
(the next step decodes those rows, whose tokens are not known yet).
"""

from __future__ import annotations

from dataclasses import replace

from allmos.batch import ScheduledBatch
from allmos.errors import ConfigError
from allmos.registry import register
from allmos.scheduler.continuous import ContinuousScheduler
from allmos.scheduler.look_ahead import LookAhead
from allmos.scheduler.policy import SchedulerOptions
from allmos.sequence import Sequence


class MixedLookAhead(LookAhead):
    """After a decode-only step, the next decode step (as continuous's); after a step with prompt rows,
    none: the next step decodes those rows too, whose tokens are not known yet."""

    def after_prefill(self, running: ScheduledBatch) -> ScheduledBatch | None:
        return None


@register("scheduler", "mixed", options=SchedulerOptions)
class MixedScheduler(ContinuousScheduler):
    always_chunks_prompts = True
    look_ahead = MixedLookAhead

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.limits = replace(self.limits, chunked_prefill=True)

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)
        if not where.attention.serves_mixed_steps:
            raise ConfigError(
                "scheduler",
                f"scheduler=mixed puts decode rows into prefill steps, which attention={where.attention.plugin_name} "
                "cannot run; use scheduler=continuous or another attention backend",
            )

    def schedule(self) -> ScheduledBatch:
        budget = self.limits.max_num_batched_tokens
        waiting_before = len(self.waiting)
        decode = self.schedule_decode()  # every running sequence: they never outnumber the budget (below)
        decodes = decode.seqs if decode is not None else []
        preempted = len(self.waiting) > waiting_before  # preemption is what puts running sequences back
        prefill = None if preempted and decodes else self.schedule_prefill(budget - len(decodes))
        batch = mixed_batch(decodes, prefill)
        if batch is None:
            raise RuntimeError("the scheduler found nothing to run while requests remain (KV cache too small?)")
        return batch


def mixed_batch(decodes: list[Sequence], prefill: ScheduledBatch | None) -> ScheduledBatch | None:
    if prefill is None:
        return ScheduledBatch(decodes, [1] * len(decodes), is_prefill=False) if decodes else None
    counts = [1] * len(decodes) + prefill.num_new_tokens
    return ScheduledBatch(decodes + prefill.seqs, counts, is_prefill=True, num_decode_rows=len(decodes))
