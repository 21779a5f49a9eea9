"""The block-manager interface the scheduler uses: who owns which KV block, and how many are free.
`paged` hands out blocks from a free pool; `prefix_caching` extends it to share full blocks."""

from __future__ import annotations

from abc import ABC, abstractmethod

from allmos.registry import BuildContext, Plugin
from allmos.sequence import Sequence


class BlockManager(Plugin, ABC):
    """Owns the KV blocks. A sequence's block table must cover every token it will compute."""

    def __init__(self, options, ctx: BuildContext):
        super().__init__(options, ctx)
        if ctx.num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got {ctx.num_blocks}")
        self.num_blocks = ctx.num_blocks
        self.block_size = ctx.block_size
        self.stats = ctx.stats  # reports the prompt tokens the prefix cache supplied

    @abstractmethod
    def can_allocate(self, seq: Sequence, num_tokens: int) -> bool:
        """Whether the block table of `seq` can grow to hold `num_tokens` tokens now."""

    @abstractmethod
    def allocate(self, seq: Sequence, num_tokens: int) -> None:
        """Grow the block table of `seq` to hold `num_tokens` tokens (first call: prefix lookup)."""

    @abstractmethod
    def mark_computed(self, seq: Sequence, num_tokens: int | None = None) -> None:
        """Called once the KV of `seq` up to `num_tokens` (default `seq.num_computed_tokens`) is written,
        or queued on the device by a step that every later step runs after."""

    @abstractmethod
    def free(self, seq: Sequence) -> None:
        """Give back every block of `seq`; its block table becomes empty."""

    def free_after_failure(self, seq: Sequence) -> None:
        """`free`, for a sequence whose step failed: the KV of its blocks may never have been written."""
        self.free(seq)

    @property
    @abstractmethod
    def num_free_blocks(self) -> int: ...

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return (num_tokens + self.block_size - 1) // self.block_size
