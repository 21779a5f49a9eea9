"""Which runner an engine gets: one ModelRunner, or `tensor_parallel_size` ranks behind the same
interface (DistributedRunner). It sits above both the engine and allmos/distributed, so neither
imports the other: the engine receives this factory."""

from __future__ import annotations

from typing import Any

from allmos.config import EngineConfig
from allmos.distributed.launcher import DistributedRunner
from allmos.engine.model_runner import ModelRunner
from allmos.engine.runner import Runner
from allmos.stats import EngineStats


def make_runner(config: EngineConfig, hf_config: Any, weights: str, stats: EngineStats) -> Runner:
    """The runner; rank 0's components report into `stats` (the other ranks run the same steps)."""
    if config.tensor_parallel_size > 1:
        return DistributedRunner(config, hf_config, weights, stats)
    return ModelRunner(config, hf_config, weights, stats=stats)
