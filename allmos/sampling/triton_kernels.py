"""Triton kernels: Gumbel-max sampling in one pass over the logits, the noise drawn in registers.

The torch sampler writes a [batch, vocab] float32 noise tensor, then reduces logits and noise in a
second kernel that gives each row to one program: at batch 1 that is a 150k-element reduction on one
SM (~60 us on an H100). Here the vocabulary of each row is cut into chunks, one program per (row,
chunk) draws its uniforms with Philox (`tl.rand`, counter = row * vocab + token), keeps the chunk's
best score and its index, and a second, tiny kernel picks each row's best chunk.

Score: logits / t - log(-log(u)) (Gumbel-max, the log-space form of argmax p / E with E ~ Exp(1));
at temperature 0 the score is the logit itself (greedy). Ties go to the lowest token id, as argmax.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 1024  # tokens per inner iteration
_H100_NUM_SMS = 132


@triton.jit(do_not_specialize=["seed"])
def _chunk_best_kernel(
    logits_ptr,
    temperatures_ptr,
    best_score_ptr,
    best_token_ptr,
    seed,
    vocab,
    stride_row,
    chunk_len,
    num_chunks,
    BLOCK: tl.constexpr,
):
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    temperature = tl.load(temperatures_ptr + row).to(tl.float32)
    sampled = temperature > 0
    safe_t = tl.where(sampled, temperature, 1.0)
    start = chunk * chunk_len
    end = tl.minimum(start + chunk_len, vocab)
    best_score = tl.full((), -float("inf"), tl.float32)
    best_token = start
    row_ptr = logits_ptr + row.to(tl.int64) * stride_row
    for block_start in range(start, end, BLOCK):
        tokens = block_start + tl.arange(0, BLOCK)
        in_chunk = tokens < end
        logits = tl.load(row_ptr + tokens, mask=in_chunk, other=-float("inf"))
        score = logits.to(tl.float32)
        if sampled:
            uniform = tl.rand(seed, row * vocab + tokens)
            score = score / safe_t - tl.log(-tl.log(uniform))
        score = tl.where(in_chunk, score, -float("inf"))
        block_best, block_index = tl.max(score, axis=0, return_indices=True)
        if block_best > best_score:  # strict: an earlier block keeps a tie
            best_score = block_best
            best_token = block_start + block_index
    tl.store(best_score_ptr + row * num_chunks + chunk, best_score)
    tl.store(best_token_ptr + row * num_chunks + chunk, best_token)


@triton.jit
def _row_best_kernel(best_score_ptr, best_token_ptr, tokens_ptr, num_chunks, CHUNKS_PAD: tl.constexpr):
    row = tl.program_id(0)
    chunks = tl.arange(0, CHUNKS_PAD)
    scores = tl.load(best_score_ptr + row * num_chunks + chunks, mask=chunks < num_chunks, other=-float("inf"))
    _, best_chunk = tl.max(scores, axis=0, return_indices=True)
    token = tl.load(best_token_ptr + row * num_chunks + best_chunk)
    tl.store(tokens_ptr + row, token.to(tl.int64))


def chunks_per_row(batch: int, vocab: int, num_sms: int = _H100_NUM_SMS) -> int:
    """Enough (row, chunk) programs to fill the GPU about four times; at least one block per chunk."""
    wanted = triton.cdiv(4 * num_sms, max(batch, 1))
    return max(1, min(wanted, triton.cdiv(vocab, _BLOCK)))


def gumbel_max_sample(logits: torch.Tensor, temperatures: torch.Tensor, seed: int) -> torch.Tensor:
    """logits [batch, vocab] (rows contiguous), temperatures [batch] (0 = greedy) -> tokens [batch] int64.

    The same (logits, temperatures, seed) always give the same tokens; callers change `seed` per step.
    """
    if logits.dim() != 2 or logits.stride(1) != 1:
        raise ValueError(f"logits must be [batch, vocab] with contiguous rows, got {tuple(logits.shape)}")
    if temperatures.shape != logits.shape[:1]:
        raise ValueError(f"temperatures {tuple(temperatures.shape)} do not match logits {tuple(logits.shape)}")
    batch, vocab = logits.shape
    tokens = torch.empty(batch, dtype=torch.int64, device=logits.device)
    if batch == 0:
        return tokens
    num_chunks = chunks_per_row(batch, vocab)
    chunk_len = triton.cdiv(triton.cdiv(vocab, num_chunks), _BLOCK) * _BLOCK
    num_chunks = triton.cdiv(vocab, chunk_len)
    best_score = torch.empty(batch, num_chunks, dtype=torch.float32, device=logits.device)
    best_token = torch.empty(batch, num_chunks, dtype=torch.int32, device=logits.device)
    _chunk_best_kernel[(batch, num_chunks)](
        logits, temperatures, best_score, best_token, seed, vocab, logits.stride(0), chunk_len, num_chunks, BLOCK=_BLOCK
    )
    pad = triton.next_power_of_2(num_chunks)
    _row_best_kernel[(batch,)](best_score, best_token, tokens, num_chunks, CHUNKS_PAD=pad)
    return tokens
