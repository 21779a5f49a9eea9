"""How the model's forward runs: eagerly, or (cuda_graph.py) replayed from captured CUDA graphs."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.attention.metadata import AttentionMetadata
from allmos.registry import register


class GraphRunner(ABC):
    devices: tuple[str, ...] = ("cpu", "cuda")

    def __init__(self, model: torch.nn.Module, backend):
        self.model = model
        self.backend = backend
        self.graph_steps = 0  # forwards replayed from a captured graph
        self.eager_steps = 0

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return cls.devices

    @classmethod
    def check(cls, config) -> None:
        """Raise ConfigError naming the switch if this runner cannot run with `config`."""

    def capture(self, runner) -> None:
        """Called once the KV cache exists; a graph runner captures its graphs here."""

    @abstractmethod
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Hidden states of the step: [num_tokens, hidden]. `meta` is the common metadata; the
        runner lets the attention backend add its own (inside the graph, when captured)."""

    def run_eager(self, input_ids, positions, meta) -> torch.Tensor:
        self.eager_steps += 1
        return self.model(input_ids, positions, self.backend.build_metadata(meta))


@register("graph_runner", "eager")
class EagerRunner(GraphRunner):
    def forward(self, input_ids, positions, meta):
        return self.run_eager(input_ids, positions, meta)
