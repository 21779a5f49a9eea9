from __future__ import annotations

from abc import ABC, abstractmethod
from typing import NamedTuple

import torch

from allmos.registry import Plugin


class KVTarget(NamedTuple):
    """Where a kernel that fuses the store writes a layer's new K/V: the paged caches, each token's slot."""

    v: torch.Tensor
    k_cache: torch.Tensor
    v_cache: torch.Tensor
    slot_mapping: torch.Tensor


class KVStore(Plugin, ABC):
    """Writes the new tokens' K and V into the paged cache at their slots (slot -1: skip)."""

    def fuses_into_rope(self) -> bool:
        """Whether a rope plugin that can store K/V (`QKRope.writes_kv`) should do it instead of `write`."""
        return False

    @abstractmethod
    def write(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
    ) -> None: ...
