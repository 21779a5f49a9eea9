"""Helpers of the block-manager tests: sequences of a given content, admitting and computing them, and
the managers' invariants."""

from __future__ import annotations

from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence

BS = 4


def make_seq(seq_id: int, tokens: list[int]) -> Sequence:
    return Sequence(seq_id, tokens, SamplingParams(temperature=0, max_tokens=16))


def admit(bm, seq: Sequence) -> Sequence:
    """Allocate the whole sequence (what the scheduler does when it admits a prompt)."""
    assert bm.can_allocate(seq, len(seq))
    bm.allocate(seq, len(seq))
    return seq


def compute(bm, seq: Sequence, upto: int | None = None) -> None:
    """Pretend a step wrote KV for `seq` up to `upto` tokens (all of them by default)."""
    seq.num_computed_tokens = len(seq) if upto is None else upto
    bm.mark_computed(seq)


def free_pool_order(bm) -> list[int]:
    return list(bm.free_pool)


def assert_consistent(bm, live: list[Sequence]) -> None:
    """Reference counts equal the number of block tables holding a block; the pool holds exactly the rest."""
    counts = [0] * bm.num_blocks
    for seq in live:
        assert len(set(seq.block_table)) == len(seq.block_table)
        for block in seq.block_table:
            counts[block] += 1
    assert bm.ref_counts == counts
    assert set(bm.free_pool) == {b for b in range(bm.num_blocks) if counts[b] == 0}
    assert bm.num_free_blocks + bm.num_used_blocks == bm.num_blocks


# --------------------------------------------------------------------------------------------- paged
