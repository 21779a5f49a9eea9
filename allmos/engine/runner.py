"""The runner interface the engine depends on: it launches a scheduled step on the device(s) and
collects its sampled tokens. `ModelRunner` is one rank; the tensor-parallel `DistributedRunner`
(allmos/distributed) puts N ranks behind the same interface. Which one an engine gets is chosen
above the engine (allmos/runners.py) and handed to it."""

from __future__ import annotations

from typing import Any, Callable, Protocol

from allmos.batch import LaunchedStep, ScheduledBatch, StepOutput


class Runner(Protocol):
    num_blocks: int  # KV blocks in the cache (on every rank)

    @property
    def closed(self) -> bool:
        """Whether it can run no more steps (after close(), or a failure that ended its ranks)."""

    def launch(self, batch: ScheduledBatch, prev: LaunchedStep | None = None) -> LaunchedStep:
        """Queue the step's work on the device without waiting for it."""

    def collect(self, step: LaunchedStep) -> StepOutput:
        """Wait for a launched step; its sampled tokens on the host."""

    def describe(self) -> dict[str, Any]:
        """What runs: the plugins, and the KV cache's size."""


# (config, hf_config, weights, stats) -> a Runner whose components report into `stats`
RunnerFactory = Callable[[Any, Any, str, Any], Runner]
