"""What every attention backend needs to know about a step, built once per step by the runner."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class AttentionMetadata:
    """Device tensors describe the batch; the `*_host` lists serve backends that loop per sequence.

    For sequence i of the batch, its `query_lens[i]` new tokens are the last positions of its
    `context_lens[i]` tokens, whose KV (old and new) lies in the cache blocks `block_tables[i]`.
    """

    is_prefill: bool
    slot_mapping: torch.Tensor  # [num_tokens] int64, -1 = do not store (padding)
    context_lens: torch.Tensor  # [batch] int32
    cu_seqlens_q: torch.Tensor  # [batch + 1] int32
    block_tables: torch.Tensor  # [batch, max_blocks] int32
    max_seqlen_q: int
    max_seqlen_k: int
    query_lens_host: list[int]
    context_lens_host: list[int]
    block_size: int
    backend_data: object = None  # whatever the backend's build_metadata adds

    @property
    def batch_size(self) -> int:
        return self.context_lens.shape[0]

    @property
    def has_cached_context(self) -> bool:
        """Whether any query attends to tokens computed in earlier steps."""
        return any(c > q for c, q in zip(self.context_lens_host, self.query_lens_host))
