"""The plugin that applies q/k RMSNorm (where the model has it) and rotary embedding to a layer's
queries and keys: as separate torch ops, or fused into one kernel."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.plugin import Plugin


class QKRope(Plugin, ABC):
    """Normalises (where the model has q/k norms) and rotates a layer's queries and keys."""

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
