"""`static`: the classic baseline. A cohort of up to `max_num_seqs` requests is admitted together
and runs to completion before the next cohort starts."""

from __future__ import annotations

from allmos.errors import ConfigError
from allmos.registry import register
from allmos.scheduler.continuous import ContinuousScheduler
from allmos.scheduler.policy import SchedulerOptions
from allmos.sequence import Sequence


@register("scheduler", "static", options=SchedulerOptions)
class StaticScheduler(ContinuousScheduler):
    """Static batching: no request joins until the whole current cohort has finished. Cohorts form in
    arrival order only: under another policy a better-ranked arrival would stand before the rest of a
    cohort, which could then never start."""

    @classmethod
    def check(cls, options, where) -> None:
        super().check(options, where)
        if options.policy != "fcfs":
            raise ConfigError(
                "scheduler.policy",
                f"scheduler=static forms its cohorts in arrival order (fcfs) only; for policy={options.policy} "
                "use scheduler=continuous or scheduler=mixed",
            )

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.cohort: set[int] = set()

    def admissible(self, seq: Sequence) -> bool:
        if not self.cohort:
            self.form_cohort()
        return seq.seq_id in self.cohort

    def form_cohort(self) -> None:
        free = self.block_manager.num_free_blocks
        for seq in list(self.waiting)[: self.limits.max_num_seqs]:
            need = self.block_manager.blocks_for(len(seq))
            if self.cohort and need > free:
                break
            free -= need
            self.cohort.add(seq.seq_id)

    def finish(self, seq: Sequence) -> None:
        super().finish(seq)
        self.cohort.discard(seq.seq_id)

    def abort(self, seq: Sequence) -> None:
        super().abort(seq)
        self.cohort.discard(seq.seq_id)
