"""Comparing two generations the way vLLM's tests do.

Exact equality is right for float64 on CPU. In bf16, two correct implementations may pick
different tokens where the top two logits nearly tie, so outputs must agree up to their first
divergence, and there each side's token must be among the other side's top-k candidates.
"""

from __future__ import annotations

from dataclasses import dataclass


def first_divergence(a: list[int], b: list[int]) -> int | None:
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


@dataclass(frozen=True)
class Verdict:
    passed: bool
    divergence: int | None
    reason: str = ""


def close_enough(ours: list[int], ours_top: list[list[int]], ref: list[int], ref_top: list[list[int]]) -> Verdict:
    """`*_top[i]` are the candidate token ids (e.g. top 5) of each side at output position i."""
    d = first_divergence(ours, ref)
    if d is None:
        return Verdict(True, None)
    if d >= min(len(ours), len(ref)):
        return Verdict(False, d, f"lengths differ ({len(ours)} vs {len(ref)}) with no token differing")
    if ours[d] in ref_top[d] and ref[d] in ours_top[d]:
        return Verdict(True, d)
    return Verdict(
        False, d, f"at {d}: ours {ours[d]} (reference top {ref_top[d]}), reference {ref[d]} (our top {ours_top[d]})"
    )
