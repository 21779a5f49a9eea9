"""What every attention backend needs to know about a step: the common metadata, built once per step
by one function (`common_metadata`) for eager steps and for the static buffers of CUDA graphs alike.
Each backend turns it into its own metadata (`AttentionBackend.build_metadata`), a subclass of
`AttentionMetadata` with the backend's fields added (`extend`)."""

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

    @property
    def batch_size(self) -> int:
        return self.context_lens.shape[0]

    @property
    def has_cached_context(self) -> bool:
        """Whether any query attends to tokens computed in earlier steps."""
        return any(c > q for c, q in zip(self.context_lens_host, self.query_lens_host))

    def extend(self, cls: type, **extra) -> AttentionMetadata:
        """This step's metadata as the backend's subclass `cls`, with the backend's fields `extra`."""
        return cls(**vars(self), **extra)


def common_metadata(
    is_prefill: bool,
    slot_mapping: torch.Tensor,
    context_lens: torch.Tensor,
    cu_seqlens_q: torch.Tensor,
    block_tables: torch.Tensor,
    query_lens_host: list[int],
    context_lens_host: list[int],
    max_seqlen_q: int,
    max_seqlen_k: int,
    block_size: int,
) -> AttentionMetadata:
    """The common metadata of a step from its device tensors and its lengths on the host (for a CUDA
    graph: those it is captured for, every row at the longest context its table width holds)."""
    return AttentionMetadata(
        is_prefill=is_prefill,
        slot_mapping=slot_mapping,
        context_lens=context_lens,
        cu_seqlens_q=cu_seqlens_q,
        block_tables=block_tables,
        max_seqlen_q=max_seqlen_q,
        max_seqlen_k=max_seqlen_k,
        query_lens_host=query_lens_host,
        context_lens_host=context_lens_host,
        block_size=block_size,
    )
