from __future__ import annotations

from dataclasses import dataclass

from allmos.engine.sequence import Sequence


@dataclass
class StepOutput:
    """What one step produced: a token per sequence, and top-k log-probabilities when asked for."""

    token_ids: list[int]
    top_logprobs: list[list[tuple[int, float]]] | None = None


@dataclass
class ScheduledBatch:
    """What one step computes: for each sequence, its next `num_new_tokens[i]` tokens."""

    seqs: list[Sequence]
    num_new_tokens: list[int]
    is_prefill: bool

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)

    def __len__(self) -> int:
        return len(self.seqs)
