from __future__ import annotations

import random
from abc import ABC, abstractmethod

import torch

from allmos.registry import BuildContext, Plugin


class Sampler(Plugin, ABC):
    """Turns the last-position logits of each sequence into one token each, on the device.

    Each step's randomness comes from `next_seed()`, drawn on the host from `seed` (reproducible) and
    handed to `forward` as a one-element device tensor, so a sampler whose draws depend on that tensor
    alone (`capturable`) can be replayed from a CUDA graph, each replay with its step's seed."""

    capturable = False  # forward may run inside a captured CUDA graph

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        self.compiled = ctx.compile
        self.generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)
        self.step_seeds = random.Random(ctx.seed)

    def next_seed(self) -> int:
        """The seed of the next step's draws (31 bits)."""
        return self.step_seeds.getrandbits(31)

    @abstractmethod
    def forward(self, logits: torch.Tensor, temperatures: torch.Tensor, seed: torch.Tensor) -> torch.Tensor:
        """logits [batch, vocab], temperatures [batch] (0 = greedy), seed [1] int64 -> token ids [batch] int64."""
