from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class KVStore(ABC):
    """Writes the new tokens' K and V into the paged cache at their slots (slot -1: skip)."""

    devices: tuple[str, ...] = ("cpu", "cuda")

    def __init__(self, options):
        self.options = options

    @classmethod
    def runs_on(cls) -> tuple[str, ...]:
        return cls.devices

    @classmethod
    def check(cls, config) -> None:
        """Raise ConfigError naming the switch if this store cannot run with `config`."""

    @abstractmethod
    def write(
        self,
        k: torch.Tensor,
        v: torch.Tensor,
        k_cache: torch.Tensor,
        v_cache: torch.Tensor,
        slot_mapping: torch.Tensor,
    ) -> None: ...
