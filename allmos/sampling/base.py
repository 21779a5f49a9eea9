from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.registry import BuildContext, Plugin


class Sampler(Plugin, ABC):
    """Turns the last-position logits of each sequence into one token each, on the device."""

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        self.compiled = ctx.compile
        self.generator = torch.Generator(device=ctx.device).manual_seed(ctx.seed)

    @abstractmethod
    def forward(self, logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
        """logits [batch, vocab], temperatures [batch] (0 = greedy) -> token ids [batch] int64."""
