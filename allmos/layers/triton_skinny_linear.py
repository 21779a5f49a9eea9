"""Triton kernel: y = x W^T for a few rows of x (decode at small batch), where the weight read is everything.

cuBLAS picks general GEMM tiles that leave much of the bandwidth unused when x has 1..8 rows and W is a few
MB. Here each program owns BLOCK_N output features and streams their full weight rows once (contiguous
BLOCK_K chunks), multiplying by all BLOCK_M rows of x held in registers: a reduction, not a tensor-core
dot, since at these row counts the kernel is bound by reading W. Accumulation is in float32; the output
is rounded once to x's dtype.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_ROWS = 8  # beyond this cuBLAS's tensor-core tiles win (measured with allmos.bench.linear_bench)


@triton.jit
def _skinny_linear_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    M,
    N,
    stride_xm,
    stride_wn,
    stride_ym,
    K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_m = tl.arange(0, BLOCK_M)
    n_mask = offs_n < N
    m_mask = offs_m < M
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in tl.static_range(0, K, BLOCK_K):  # K is a model dimension: one compile per layer shape
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        w = tl.load(w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :], mask=n_mask[:, None] & k_mask[None, :])
        x = tl.load(x_ptr + offs_m[:, None] * stride_xm + offs_k[None, :], mask=m_mask[:, None] & k_mask[None, :])
        acc += tl.sum(x.to(tl.float32)[:, None, :] * w.to(tl.float32)[None, :, :], axis=2)
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=m_mask[:, None] & n_mask[None, :])


def skinny_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    *,
    block_n: int = 8,
    block_k: int = 512,
    num_warps: int = 4,
    num_stages: int = 3,
) -> torch.Tensor:
    """x [M, K] (M <= MAX_ROWS, rows contiguous) @ weight [N, K]^T -> [M, N] in x's dtype."""
    m, k = x.shape
    n = weight.shape[0]
    if m > MAX_ROWS or weight.shape[1] != k or x.stride(1) != 1 or weight.stride(1) != 1:
        raise ValueError(f"skinny_linear: x {tuple(x.shape)} and weight {tuple(weight.shape)} do not fit")
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    block_m = triton.next_power_of_2(max(m, 1))
    grid = (triton.cdiv(n, block_n),)
    _skinny_linear_kernel[grid](
        x,
        weight,
        y,
        m,
        n,
        x.stride(0),
        weight.stride(0),
        y.stride(0),
        K=k,
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=min(block_k, triton.next_power_of_2(k)),
        num_warps=num_warps,
        num_stages=num_stages,
    )
    return y
