"""Triton kernels: y = a W^T for a few rows (decode at batch 1), where reading W is everything, with the
element-wise op that produces `a` fused into the load of its input:

  * `skinny_linear`:       a = x
  * `add_rms_norm_linear`: a = rms_norm(x + residual) (or rms_norm(x)); also returns x + residual
  * `silu_mul_linear`:     a = silu(gate) * up, from the packed [gate | up] projection output

Each program owns BLOCK_N output features and streams their full weight rows once in contiguous BLOCK_K
chunks, multiplying by all BLOCK_M rows of `a` held in registers: float32 products, not a tensor-core
dot, since at these row counts the weight read bounds the kernel. The products accumulate element-wise
in a [BLOCK_M, BLOCK_N, BLOCK_K] float32 tile that is summed over K once at the end: a sum per chunk
would put a cross-warp reduction (shared memory and a barrier) between chunks, which serialises the
chunks' weight loads instead of letting all of them be in flight. At one row the tile is [BLOCK_N, BLOCK_K],
in the layout the weight chunk is loaded in: the 3-D form would move the whole chunk through shared memory
into another layout after the PDL wait. The output is rounded once.

The fused prologues round where the torch ops in allmos.layers.ops round (to the input dtype), so the
results agree with the unfused path to the tolerance of the output dtype. The prologue is recomputed by
every program from the row (a few KB, from L2), which is cheaper than the separate kernel it replaces.
Beyond MAX_ROWS rows cuBLAS's tensor-core tiles win; these kernels are for single-row decode steps.

With `pdl` (programmatic dependent launch, sm_90+) a kernel is launched while the previous one is still
running: each program lets its own successor launch at once, loads its first weight chunk (weights are
constant, so that is safe), and only then waits for the previous kernel to finish before it reads its
input or writes anything. At batch 1 a layer's kernels are each a few microseconds long, and this hides
most of the gap between them: the launch, and the time until the first weight bytes arrive.
"""

from __future__ import annotations

import torch

from allmos.linear.kernels.gemv_checks import check_like, check_rows, check_weight
from allmos.linear.kernels.gemv_config import launch_config
from allmos.linear.kernels.gemv_kernel import (
    _add_rms_norm_linear_kernel,
    _silu_mul_linear_kernel,
    _skinny_linear_kernel,
)
from allmos.triton_shared.support import pdl_launch


def _launch(kernel, config: dict, name: str, *args, pdl: bool, **constexprs) -> None:
    kernel[config["grid"]](
        *args,
        BLOCK_M=config["BLOCK_M"],
        BLOCK_N=config["BLOCK_N"],
        BLOCK_K=config["BLOCK_K"],
        num_warps=config["num_warps"],
        **pdl_launch(name, pdl, args[0].device),
        **constexprs,
    )


# ---------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------


def skinny_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    *,
    block_n: int | None = None,
    block_k: int | None = None,
    num_warps: int | None = None,
    pdl: bool = False,
) -> torch.Tensor:
    """x [M, K] (1 <= M <= MAX_ROWS, rows contiguous) @ weight [N, K]^T -> [M, N] in x's dtype."""
    name = "skinny_linear"
    check_weight(name, x, weight)
    n, k = weight.shape
    check_rows(name, "x", x, k)
    config = launch_config(name, x.shape[0], n, k, block_n, block_k, num_warps)
    y = torch.empty(x.shape[0], n, dtype=x.dtype, device=x.device)
    strides = (x.stride(0), weight.stride(0), y.stride(0))
    _launch(_skinny_linear_kernel, config, name, x, weight, y, x.shape[0], n, *strides, K=k, pdl=pdl)
    return y


def add_rms_norm_linear(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    norm_weight: torch.Tensor,
    eps: float,
    weight: torch.Tensor,
    *,
    block_n: int | None = None,
    block_k: int | None = None,
    num_warps: int | None = None,
    pdl: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ops.add_rms_norm(x, residual, norm_weight, eps) @ weight^T, x + residual) in one kernel.

    x, residual [M, K] (1 <= M <= MAX_ROWS, rows contiguous), norm_weight [K], weight [N, K], all of x's
    dtype. The new residual is a fresh tensor; with residual None the norm is ops.rms_norm(x) and the
    returned residual is x itself, as the model's first layer does.
    """
    name = "add_rms_norm_linear"
    check_weight(name, x, weight)
    n, k = weight.shape
    check_rows(name, "x", x, k)
    check_like(name, "norm_weight", norm_weight, (k,), x)
    if residual is not None:
        check_like(name, "residual", residual, tuple(x.shape), x)
    m = x.shape[0]
    config = launch_config(name, m, n, k, block_n, block_k, num_warps)
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    new_residual = x if residual is None else torch.empty(m, k, dtype=x.dtype, device=x.device)
    residual_in = x if residual is None else residual  # a valid pointer the kernel never reads
    _launch(
        _add_rms_norm_linear_kernel,
        config,
        name,
        x,
        residual_in,
        norm_weight,
        weight,
        y,
        new_residual,
        m,
        n,
        float(eps),
        x.stride(0),
        residual_in.stride(0),
        new_residual.stride(0),
        weight.stride(0),
        y.stride(0),
        K=k,
        HAS_RESIDUAL=residual is not None,
        pdl=pdl,
    )
    return y, new_residual


def silu_mul_linear(
    gate_up: torch.Tensor,
    weight: torch.Tensor,
    *,
    block_n: int | None = None,
    block_k: int | None = None,
    num_warps: int | None = None,
    pdl: bool = False,
) -> torch.Tensor:
    """ops.silu_and_mul(gate_up) @ weight^T in one kernel: gate_up [M, 2K] = [gate | up] (1 <= M <=
    MAX_ROWS, rows contiguous), weight [N, K] -> [M, N] in gate_up's dtype."""
    name = "silu_mul_linear"
    check_weight(name, gate_up, weight)
    n, k = weight.shape
    check_rows(name, "gate_up", gate_up, 2 * k)
    m = gate_up.shape[0]
    config = launch_config(name, m, n, k, block_n, block_k, num_warps)
    y = torch.empty(m, n, dtype=gate_up.dtype, device=gate_up.device)
    _launch(
        _silu_mul_linear_kernel,
        config,
        name,
        gate_up,
        weight,
        y,
        m,
        n,
        gate_up.stride(0),
        weight.stride(0),
        y.stride(0),
        K=k,
        pdl=pdl,
    )
    return y
