from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from allmos.plugin import Plugin


class KVStore(Plugin, ABC):
    """Writes the new tokens' K and V into the paged cache at their slots (slot -1: skip)."""

    @abstractmethod
    def write(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
    ) -> None: ...
