"""The scheduler interface: what each step computes. One policy per module of this package."""

from __future__ import annotations

from abc import ABC, abstractmethod

from allmos.batch import ScheduledBatch, StepOutput
from allmos.block_manager.base import BlockManager
from allmos.registry import BuildContext, Limits, Plugin
from allmos.sequence import Sequence


class Scheduler(Plugin, ABC):
    # The async_scheduling policy for this scheduler (LookAhead or a subclass, built with the
    # scheduler); None: it has none, and async_scheduling=true is refused with it.
    look_ahead: type | None = None

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        self.limits: Limits = ctx.limits
        self.block_manager: BlockManager = ctx.block_manager
        self.eos_token_ids = set(ctx.eos_token_ids)
        self.stats = ctx.stats  # reports preemptions

    @abstractmethod
    def add(self, seq: Sequence) -> None: ...

    @abstractmethod
    def has_unfinished(self) -> bool: ...

    @abstractmethod
    def schedule(self) -> ScheduledBatch:
        """The next step's batch; raises if nothing can be scheduled although work remains."""

    @abstractmethod
    def postprocess(self, batch: ScheduledBatch, output: StepOutput) -> list[Sequence]:
        """Record the step's sampled tokens; returns the sequences that finished."""

    @abstractmethod
    def abort(self, seq: Sequence) -> None:
        """Finish `seq` now, wherever it is, and give back its blocks."""
