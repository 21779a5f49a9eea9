"""The plugin that applies q/k RMSNorm (where the model has it) and rotary embedding to a layer's
queries and keys: as separate torch ops, or fused into one kernel."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding


class QKRope(ABC):
    devices: tuple[str, ...] = ("cpu", "cuda")

    def __init__(self, options):
        self.options = options

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return cls.devices

    @classmethod
    def check(cls, config) -> None:
        """Raise ConfigError naming the switch if this plugin cannot run with `config`."""

    @abstractmethod
    def apply(
        self,
        positions: torch.Tensor,
        q: torch.Tensor,
        k: torch.Tensor,
        q_norm: RMSNorm | None,
        k_norm: RMSNorm | None,
        rotary: RotaryEmbedding,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q [tokens, heads, dim], k [tokens, kv_heads, dim] -> the normed, rotated (q, k)."""
