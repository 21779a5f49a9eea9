from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from allmos.sequence import Sequence


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
    # Set on a decode batch scheduled one step ahead, while the step before it still runs: for
    # each sequence, its row in that step, whose sampled token (not yet on the host) is its input.
    ahead_rows: list[int] | None = None
    context_tokens: int = 0  # tokens whose KV the step's attention reads (set when launched)

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)

    def __len__(self) -> int:
        return len(self.seqs)


@dataclass
class LaunchedStep:
    """A step whose work is queued on the device: its sampled ids stay there (a look-ahead step reads
    them as inputs) while a copy travels to the host."""

    batch: ScheduledBatch
    tokens: torch.Tensor  # [batch] sampled ids, on the device
    readback: Any  # the host copy in flight (TokenReadback)
    tops: tuple[torch.Tensor, torch.Tensor] | None = None  # top-k log-probabilities and ids, on the device
