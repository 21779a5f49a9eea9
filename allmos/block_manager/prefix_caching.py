"""Prefix caching: full blocks are shared between sequences whose tokens agree up to them.

Each full block is named by a chained xxhash of its tokens and the hash of the block before it.
A block's hash is registered only once its KV has been written, or queued on the device by a step
that every later step runs after (`mark_computed`), so a hit never reads KV that is not there yet.
Freed blocks keep their hash and stay reusable until the pool hands them out again (least recently
freed first).
"""

from __future__ import annotations

import numpy as np
import xxhash

from allmos.block_manager.paged import PagedBlockManager
from allmos.registry import register
from allmos.sequence import Sequence


def chain_hash(prev_hash: int, tokens: list[int]) -> int:
    h = xxhash.xxh64()
    h.update(prev_hash.to_bytes(8, "little"))
    h.update(np.asarray(tokens, dtype=np.int64).tobytes())
    return h.intdigest()


@register("block_manager", "prefix_caching")
class PrefixCachingBlockManager(PagedBlockManager):
    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.block_of_hash: dict[int, int] = {}
        self.hash_of_block: dict[int, int] = {}
        self.tokens_of_block: dict[int, tuple[int, ...]] = {}

    def on_first_allocation(self, seq: Sequence) -> None:
        # At least one token must be computed to produce logits, so the last block stays uncached
        # when the whole sequence would hit.
        max_hits = (len(seq) - 1) // self.block_size
        prev = 0
        for index in range(max_hits):
            tokens = seq.block_tokens(index, self.block_size)
            h = chain_hash(prev, tokens)
            block = self.block_of_hash.get(h)
            if block is None or self.tokens_of_block[block] != tuple(tokens):
                break
            self.acquire(block)
            seq.block_table.append(block)
            seq.block_hashes.append(h)
            prev = h
        seq.num_hashed_blocks = len(seq.block_table)
        seq.num_cached_tokens = seq.num_computed_tokens = len(seq.block_table) * self.block_size
        self.stats.count("cached_prompt_tokens", seq.num_cached_tokens)

    def acquire(self, block: int) -> None:
        if self.ref_counts[block] == 0:
            del self.free_pool[block]
        self.ref_counts[block] += 1

    def take_free_block(self) -> int:
        block = super().take_free_block()
        self.forget(block)
        return block

    def free_after_failure(self, seq: Sequence) -> None:
        """Blocks only `seq` holds leave the cache first, so no later request hits KV never written."""
        for block in seq.block_table:
            if self.ref_counts[block] == 1:
                self.forget(block)
        self.free(seq)

    def forget(self, block: int) -> None:
        h = self.hash_of_block.pop(block, None)
        if h is not None and self.block_of_hash.get(h) == block:
            del self.block_of_hash[h]
        self.tokens_of_block.pop(block, None)

    def mark_computed(self, seq: Sequence, num_tokens: int | None = None) -> None:
        computed = seq.num_computed_tokens if num_tokens is None else num_tokens
        full = min(computed // self.block_size, len(seq.block_table))
        for index in range(seq.num_hashed_blocks, full):
            prev = seq.block_hashes[-1] if seq.block_hashes else 0
            tokens = seq.block_tokens(index, self.block_size)
            h = chain_hash(prev, tokens)
            seq.block_hashes.append(h)
            self.register(seq.block_table[index], h, tokens)
        seq.num_hashed_blocks = max(seq.num_hashed_blocks, full)

    def register(self, block: int, h: int, tokens: list[int]) -> None:
        if h in self.block_of_hash or block in self.hash_of_block:
            return
        self.block_of_hash[h] = block
        self.hash_of_block[block] = h
        self.tokens_of_block[block] = tuple(tokens)
