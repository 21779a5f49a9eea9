"""Triton kernels: Gumbel-max sampling in one pass over the logits, the noise drawn in registers.

The torch sampler writes a [batch, vocab] float32 noise tensor, then reduces logits and noise in a
second kernel that gives each row to one program: at batch 1 that is a 150k-element reduction on one
SM (~60 us on an H100). Here the vocabulary of each row is cut into chunks, one program per (row,
chunk) draws its uniforms with Philox (`tl.rand4x`: four uniforms per counter, one counter per lane of
each 1024-token block), keeps a lane-wise running best score and token, and a second, tiny kernel picks
each row's best chunk.

Score: logits / t - log(-log(u)) (Gumbel-max, the log-space form of argmax p / E with E ~ Exp(1)),
computed in base 2 as logits * log2(e) / t - log2(-log2(u)), which is the same score times log2(e)
plus a constant (the argmax is the same), with the hardware's approximate log2 (MUFU lg2.approx) on
CUDA: the polynomial log the compiler otherwise emits was most of the kernel's instructions (it is
bound by arithmetic, not by reading the logits). At temperature 0 the score is the logit itself
(greedy). Ties go to the lowest token id, as argmax.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

_BLOCK = 1024  # tokens per inner iteration: four quarters, one Philox call draws a uniform for each
_H100_NUM_SMS = 132
_TOKEN_MAX = tl.constexpr(2**31 - 1)


@triton.jit
def _log2(x, FAST_LOG: tl.constexpr):
    if FAST_LOG:
        return tl.inline_asm_elementwise("lg2.approx.f32 $0, $1;", "=r,r", [x], dtype=tl.float32, is_pure=True, pack=1)
    else:  # the interpreter cannot run PTX
        return tl.log2(x)


@triton.jit
def _best_of_quarter(best, best_token, row_ptr, tokens, end, uniform, sampled, scale, FAST_LOG: tl.constexpr):
    """Lane-wise running maximum of the scores of `tokens` (strict: an earlier token keeps a tie)."""
    in_chunk = tokens < end
    score = tl.load(row_ptr + tokens, mask=in_chunk, other=-float("inf")).to(tl.float32)
    if sampled:
        score = score * scale - _log2(-_log2(uniform, FAST_LOG), FAST_LOG)
    score = tl.where(in_chunk, score, -float("inf"))
    better = score > best
    return tl.where(better, score, best), tl.where(better, tokens, best_token)


# Every integer and the temperatures pointer vary from step to step (batch size, staging offsets):
# specialising on them would compile new variants inside timed runs.
@triton.jit(do_not_specialize=["temperatures_ptr", "seed_ptr", "vocab", "stride_row", "chunk_len", "num_chunks"])
def _chunk_best_kernel(
    logits_ptr,
    temperatures_ptr,
    best_score_ptr,
    best_token_ptr,
    seed_ptr,
    vocab,
    stride_row,
    chunk_len,
    num_chunks,
    BLOCK: tl.constexpr,
    FAST_LOG: tl.constexpr,
):
    row = tl.program_id(0)
    chunk = tl.program_id(1)
    temperature = tl.load(temperatures_ptr + row).to(tl.float32)
    sampled = temperature > 0
    scale = 1.4426950408889634 / tl.where(sampled, temperature, 1.0)  # log2(e) / t
    start = chunk * chunk_len
    end = tl.minimum(start + chunk_len, vocab)
    row_ptr = logits_ptr + row.to(tl.int64) * stride_row
    QUARTER: tl.constexpr = BLOCK // 4
    lanes = tl.arange(0, QUARTER)
    rand_row = tl.cdiv(vocab, BLOCK) * QUARTER  # Philox counters per row: one per lane and block
    best = tl.full((QUARTER,), -float("inf"), tl.float32)
    best_token = start + lanes
    seed = tl.load(seed_ptr)  # from the device, so a CUDA graph replays each step with that step's seed
    for block_start in range(start, end, BLOCK):
        if sampled:
            u0, u1, u2, u3 = tl.rand4x(seed, row * rand_row + block_start // 4 + lanes)
        else:  # unused: greedy scores are the logits
            u0, u1, u2, u3 = lanes.to(tl.float32), lanes.to(tl.float32), lanes.to(tl.float32), lanes.to(tl.float32)
        tokens = block_start + lanes
        best, best_token = _best_of_quarter(best, best_token, row_ptr, tokens, end, u0, sampled, scale, FAST_LOG)
        tokens += QUARTER
        best, best_token = _best_of_quarter(best, best_token, row_ptr, tokens, end, u1, sampled, scale, FAST_LOG)
        tokens += QUARTER
        best, best_token = _best_of_quarter(best, best_token, row_ptr, tokens, end, u2, sampled, scale, FAST_LOG)
        tokens += QUARTER
        best, best_token = _best_of_quarter(best, best_token, row_ptr, tokens, end, u3, sampled, scale, FAST_LOG)
    chunk_best = tl.max(best, axis=0)
    chunk_token = tl.min(tl.where(best == chunk_best, best_token, _TOKEN_MAX), axis=0)
    tl.store(best_score_ptr + row * num_chunks + chunk, chunk_best)
    tl.store(best_token_ptr + row * num_chunks + chunk, chunk_token)


@triton.jit(do_not_specialize=["num_chunks"])
def _row_best_kernel(best_score_ptr, best_token_ptr, tokens_ptr, num_chunks, CHUNKS_PAD: tl.constexpr):
    row = tl.program_id(0)
    chunks = tl.arange(0, CHUNKS_PAD)
    scores = tl.load(best_score_ptr + row * num_chunks + chunks, mask=chunks < num_chunks, other=-float("inf"))
    _, best_chunk = tl.max(scores, axis=0, return_indices=True)  # ties: the lowest chunk, so the lowest token
    token = tl.load(best_token_ptr + row * num_chunks + best_chunk)
    tl.store(tokens_ptr + row, token.to(tl.int64))


# (row, chunk) programs per SM. sampler_bench on an H100, 4 -> 32: batch 16 17.6 -> 14.3 us, batch 102
# 76.6 -> 61.5 us, batch 256 173.6 -> 142.8 us (more programs in flight; the kernel is bound by arithmetic).
PROGRAMS_PER_SM = 32


def chunks_per_row(batch: int, vocab: int, num_sms: int = _H100_NUM_SMS, programs_per_sm: int = PROGRAMS_PER_SM) -> int:
    """Enough (row, chunk) programs to fill the GPU `programs_per_sm` times; at least one block per chunk.
    The chunking changes no token: the noise of a token depends on its row and position alone."""
    wanted = triton.cdiv(programs_per_sm * num_sms, max(batch, 1))
    return max(1, min(wanted, triton.cdiv(vocab, _BLOCK)))


def gumbel_max_sample(
    logits: torch.Tensor,
    temperatures: torch.Tensor,
    seed: int | torch.Tensor,
    programs_per_sm: int = PROGRAMS_PER_SM,
    fast_log: bool | None = None,
) -> torch.Tensor:
    """logits [batch, vocab] (rows contiguous), temperatures [batch] (0 = greedy) -> tokens [batch] int64.

    The same (logits, temperatures, seed) always give the same tokens; callers change `seed` per step.
    `seed` is an int or a one-element int64 tensor on the logits' device (the engine's: the kernel reads
    it there, so a captured graph samples each replay with the seed of its step).
    `fast_log` (default: on CUDA) takes the hardware's approximate log2; off, Triton's accurate one.
    """
    if fast_log is None:
        fast_log = logits.device.type == "cuda"
    if fast_log and logits.device.type != "cuda":
        raise ValueError("fast_log runs PTX: it needs CUDA tensors")
    if logits.dim() != 2 or logits.stride(1) != 1:
        raise ValueError(f"logits must be [batch, vocab] with contiguous rows, got {tuple(logits.shape)}")
    if temperatures.shape != logits.shape[:1]:
        raise ValueError(f"temperatures {tuple(temperatures.shape)} do not match logits {tuple(logits.shape)}")
    if not isinstance(seed, torch.Tensor):
        seed = torch.full((1,), int(seed), dtype=torch.int64, device=logits.device)
    elif seed.shape != (1,) or seed.dtype != torch.int64 or seed.device != logits.device:
        raise ValueError(f"seed must be a one-element int64 tensor on {logits.device}, got {seed!r}")
    batch, vocab = logits.shape
    tokens = torch.empty(batch, dtype=torch.int64, device=logits.device)
    if batch == 0:
        return tokens
    num_chunks = chunks_per_row(batch, vocab, programs_per_sm=programs_per_sm)
    chunk_len = triton.cdiv(triton.cdiv(vocab, num_chunks), _BLOCK) * _BLOCK
    num_chunks = triton.cdiv(vocab, chunk_len)
    best_score = torch.empty(batch, num_chunks, dtype=torch.float32, device=logits.device)
    best_token = torch.empty(batch, num_chunks, dtype=torch.int32, device=logits.device)
    _chunk_best_kernel[(batch, num_chunks)](
        logits, temperatures, best_score, best_token, seed, vocab, logits.stride(0), chunk_len, num_chunks,
        BLOCK=_BLOCK, FAST_LOG=fast_log,
    )  # fmt: skip
    pad = triton.next_power_of_2(triton.cdiv(vocab, _BLOCK))  # one compiled variant per vocabulary
    _row_best_kernel[(batch,)](best_score, best_token, tokens, num_chunks, CHUNKS_PAD=pad)
    return tokens
