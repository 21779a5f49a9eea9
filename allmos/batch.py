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
    # scheduler=mixed: rows [0, num_decode_rows) of a prefill-path batch are running sequences' decode
    # tokens (one each, after their whole context); the rest are prompt chunks
    num_decode_rows: int = 0

    @property
    def num_tokens(self) -> int:
        return sum(self.num_new_tokens)

    @property
    def kind(self) -> str:
        """prefill | decode | mixed (decode rows and prompt chunks in one forward, on the prefill path)."""
        if not self.is_prefill:
            return "decode"
        return "mixed" if self.num_decode_rows else "prefill"

    @property
    def num_prefill_tokens(self) -> int:
        """The prompt tokens this step computes (recomputation included)."""
        return self.num_tokens - self.num_decode_rows if self.is_prefill else 0

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
