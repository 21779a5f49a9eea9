from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.plugin import Plugin


class Sampler(Plugin, ABC):
    """Turns the last-position logits of each sequence into one token each, on the device."""

    def __init__(self, options, seed: int, device: torch.device, compiled: bool = False):
        super().__init__(options)
        self.compiled = compiled
        self.generator = torch.Generator(device=device).manual_seed(seed)

    @abstractmethod
    def forward(self, logits: torch.Tensor, temperatures: torch.Tensor) -> torch.Tensor:
        """logits [batch, vocab], temperatures [batch] (0 = greedy) -> token ids [batch] int64."""
