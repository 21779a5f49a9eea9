"""`paged`: blocks from a free pool with reference counts; no sharing between sequences."""

from __future__ import annotations

from collections import OrderedDict

from allmos.block_manager.base import BlockManager
from allmos.registry import register
from allmos.sequence import Sequence


@register("block_manager", "paged")
class PagedBlockManager(BlockManager):
    """Blocks from a free pool with reference counts; no sharing between sequences."""

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.ref_counts = [0] * self.num_blocks
        # Ordered by the time each block was freed: the front is the least recently used.
        self.free_pool: OrderedDict[int, None] = OrderedDict((b, None) for b in range(self.num_blocks))

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
