"""The graph-runner interface: how the model's forward runs, eagerly (eager.py) or replayed from
captured CUDA graphs (cuda_graph.py). `cuda_graphs=` picks one."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch

from allmos.attention.metadata import AttentionMetadata
from allmos.registry import BuildContext, Plugin

if TYPE_CHECKING:
    from allmos.engine.step_inputs import StepInputs


class GraphRunner(Plugin, ABC):
    """Runs `ctx.model`; `ctx.attention` adds its metadata to each step's (inside the graph, when
    captured). Counts the forwards it replayed from a graph and those it ran eagerly."""

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        self.ctx = ctx
        self.model = ctx.model
        self.backend = ctx.attention
        self.stats = ctx.stats  # reports graph and eager forwards

    def capture(self) -> None:
        """Called once the KV cache exists; a graph runner captures its graphs here."""

    @abstractmethod
    def forward(self, input_ids: torch.Tensor, positions: torch.Tensor, meta: AttentionMetadata) -> torch.Tensor:
        """Hidden states of the step: [num_tokens, hidden]. `meta` is the common metadata; the
        runner lets the attention backend add its own (inside the graph, when captured)."""

    def step(self, inputs: StepInputs, num_seqs: int) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The step's [num_seqs, vocab] logits (the LM head over the rows to sample), and its sampled
        tokens when this runner's graph sampled them (None: the caller samples)."""
        hidden = self.forward(inputs.input_ids, inputs.positions, inputs.meta)
        if inputs.logits_indices is not None:
            hidden = hidden[inputs.logits_indices]
        return self.model.compute_logits(hidden[:num_seqs]), None

    def run_eager(self, input_ids, positions, meta) -> torch.Tensor:
        self.stats.count("eager_forwards")
        return self.model(input_ids, positions, self.backend.build_metadata(meta))
