"""KV-cache blocks: who owns which, and how many are free.

`BlockManager` is the interface the scheduler uses. `PagedBlockManager` hands out blocks from a
free pool; the prefix-caching manager (prefix_cache.py) extends it to share full blocks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import OrderedDict

from allmos.engine.sequence import Sequence
from allmos.registry import register


class BlockManager(ABC):
    """Owns the KV blocks. A sequence's block table must cover every token it will compute."""

    def __init__(self, num_blocks: int, block_size: int):
        if num_blocks < 1:
            raise ValueError(f"the KV cache needs at least one block, got {num_blocks}")
        self.num_blocks = num_blocks
        self.block_size = block_size
        self.cached_tokens = 0  # tokens whose KV was found in the prefix cache, over the run

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

    @property
    @abstractmethod
    def num_free_blocks(self) -> int: ...

    @property
    def num_used_blocks(self) -> int:
        return self.num_blocks - self.num_free_blocks

    def blocks_for(self, num_tokens: int) -> int:
        return (num_tokens + self.block_size - 1) // self.block_size


@register("block_manager", "paged")
class PagedBlockManager(BlockManager):
    """Blocks from a free pool with reference counts; no sharing between sequences."""

    def __init__(self, num_blocks: int, block_size: int):
        super().__init__(num_blocks, block_size)
        self.ref_counts = [0] * num_blocks
        # Ordered by the time each block was freed: the front is the least recently used.
        self.free_pool: OrderedDict[int, None] = OrderedDict((b, None) for b in range(num_blocks))

    @property
    def num_free_blocks(self) -> int:
        return len(self.free_pool)

    def can_allocate(self, seq: Sequence, num_tokens: int) -> bool:
        return self.blocks_for(num_tokens) - len(seq.block_table) <= self.num_free_blocks

    def allocate(self, seq: Sequence, num_tokens: int) -> None:
        if not seq.block_table:
            self.on_first_allocation(seq)
        missing = self.blocks_for(num_tokens) - len(seq.block_table)
        if missing > self.num_free_blocks:
            raise RuntimeError(f"sequence {seq.seq_id} needs {missing} blocks, {self.num_free_blocks} free")
        for _ in range(missing):
            seq.block_table.append(self.take_free_block())

    def on_first_allocation(self, seq: Sequence) -> None:
        """Hook for prefix caching: reuse blocks before fresh ones are taken."""

    def mark_computed(self, seq: Sequence, num_tokens: int | None = None) -> None:
        pass

    def take_free_block(self) -> int:
        block, _ = self.free_pool.popitem(last=False)
        self.ref_counts[block] = 1
        return block

    def free(self, seq: Sequence) -> None:
        for block in reversed(seq.block_table):
            self.release(block)
        seq.block_table = []
        seq.num_computed_tokens = 0
        seq.num_cached_tokens = 0
        seq.num_hashed_blocks = 0
        seq.block_hashes = []

    def release(self, block: int) -> None:
        if self.ref_counts[block] <= 0:
            raise RuntimeError(f"block {block} released with reference count {self.ref_counts[block]}")
        self.ref_counts[block] -= 1
        if self.ref_counts[block] == 0:
            self.free_pool[block] = None
