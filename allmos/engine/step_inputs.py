"""Turn a scheduled batch into the step's device tensors with array operations (no per-token loop)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from allmos.attention.metadata import AttentionMetadata, common_metadata
from allmos.batch import ScheduledBatch
from allmos.engine.staging import HostStaging


@dataclass
class StepInputs:
    input_ids: torch.Tensor
    positions: torch.Tensor
    meta: AttentionMetadata
    logits_indices: torch.Tensor | None  # rows of the hidden states to sample from (prefill)
    temperatures: torch.Tensor
    seed: torch.Tensor  # [1] int64: the sampler's draws of this step


def block_table_array(batch: ScheduledBatch) -> np.ndarray:
    width = max(len(s.block_table) for s in batch.seqs)
    table = np.zeros((len(batch.seqs), width), dtype=np.int32)
    for row, seq in enumerate(batch.seqs):
        table[row, : len(seq.block_table)] = seq.block_table
    return table


def token_arrays(batch: ScheduledBatch, starts: np.ndarray, counts: np.ndarray):
    """(input ids, positions, sequence index of each token) for the batch's new tokens."""
    if batch.ahead_rows is not None:
        return None, starts.copy(), np.arange(len(batch.seqs))
    if not batch.is_prefill:
        ids = np.fromiter((s.token_ids[-1] for s in batch.seqs), dtype=np.int64, count=len(batch.seqs))
        return ids, starts.astype(np.int64), np.arange(len(batch.seqs))
    pieces = (s.token_ids[a : a + n] for s, a, n in zip(batch.seqs, starts.tolist(), counts.tolist()))
    total = int(counts.sum())
    ids = np.fromiter(itertools.chain.from_iterable(pieces), dtype=np.int64, count=total)
    seq_index = np.repeat(np.arange(len(batch.seqs)), counts)
    offsets = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    return ids, starts[seq_index] + offsets, seq_index


def build_step_inputs(
    batch: ScheduledBatch,
    block_size: int,
    device: torch.device,
    staging: HostStaging | None = None,
    prev_tokens: torch.Tensor | None = None,
    seed: int = 0,
) -> StepInputs:
    """The step's tensors on `device`. A look-ahead batch (`batch.ahead_rows` set) is built while the
    step before it still runs: each sequence's input is the token that step is sampling, taken on the
    device from `prev_tokens` (that step's sampled ids), at the position one past what the host knows.
    `seed` is the sampler's seed for the step (Sampler.next_seed)."""
    ahead = batch.ahead_rows is not None
    if ahead and prev_tokens is None:
        raise ValueError("a look-ahead batch needs the sampled tokens of the step before it")
    starts = np.fromiter((s.num_computed_tokens for s in batch.seqs), dtype=np.int64, count=len(batch.seqs))
    starts += ahead
    counts = np.asarray(batch.num_new_tokens, dtype=np.int64)
    context = starts + counts
    ids, positions, seq_index = token_arrays(batch, starts, counts)
    table = block_table_array(batch)
    slots = table[seq_index, positions // block_size].astype(np.int64) * block_size + positions % block_size
    cu_q = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    temps = np.fromiter((s.params.temperature for s in batch.seqs), dtype=np.float32, count=len(batch.seqs))
    # positions first: at offset 0 of the staged copy, so the compiled RoPE sees the same storage
    # offset every step (a varying one recompiled it inside timed runs, through dynamo's duck sizing)
    arrays = {
        "positions": positions,
        "ids": np.asarray(batch.ahead_rows, dtype=np.int64) if ahead else ids,
        "slots": slots,
        "context": context.astype(np.int32),
        "cu_q": cu_q,
        "table": table,
        "temps": temps,
        "seed": np.array([seed], dtype=np.int64),
    }
    if batch.is_prefill:
        arrays["logits_indices"] = cu_q[1:].astype(np.int64) - 1
    dev = (staging or HostStaging(device)).to_device(arrays)
    meta = common_metadata(
        batch.is_prefill,
        dev["slots"],
        dev["context"],
        dev["cu_q"],
        dev["table"],
        counts.tolist(),
        context.tolist(),
        int(counts.max()),
        int(context.max()),
        block_size,
    )
    input_ids = prev_tokens[dev["ids"]] if ahead else dev["ids"]
    return StepInputs(input_ids, dev["positions"], meta, dev.get("logits_indices"), dev["temps"], dev["seed"])
