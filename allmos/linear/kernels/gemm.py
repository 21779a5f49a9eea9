"""Triton tensor-core GEMMs for decode steps of a few to a few hundred rows: y = a W^T, with the element-wise
op that produces `a` fused into the load of its input, as the single-row GEMVs do
(allmos.linear.kernels.gemv):

  * `rows_linear`:              a = x
  * `add_rms_norm_rows_linear`: a = rms_norm(x + residual) (or rms_norm(x)); also returns x + residual
  * `silu_mul_rows_linear`:     a = silu(gate) * up, from the packed [gate | up] projection output

Why not cuBLAS: at these row counts a projection of a small model is a few microseconds of work whose
output (N = 1024 for o and down) has too few tiles to occupy an H100's 132 SMs; a tile narrow enough to
make enough tiles re-reads the input once per tile. Here a program owns a BLOCK_M x BLOCK_N output tile
and one of `split_k` slices of K (split-K): the tiles can stay wide and the grid still fills the GPU.

Split-K reduction without a second kernel: each program stores its float32 partial tile in a workspace,
then counts itself in a per-tile counter (an acquire-release atomic after a CTA barrier, the pattern of a
semaphore release). The program that arrives last sums the slices in slice order (so the result does
not depend on which program was last), writes the output and resets the counter to zero, leaving the
counters ready for the next launch. The counters are a zeroed int32 tensor the caller owns
(`new_split_counters`), shared by every launch on the device: launches on one stream never overlap, and
under programmatic dependent launch a program touches them only after waiting for the previous kernel.

The SiLU prologue rounds where ops.silu_and_mul rounds, so its tensor-core operand is the very tensor
the unfused path feeds cuBLAS. The norm's 1/rms needs the whole row, which a program (holding one slice
of K) does not have when it multiplies: it multiplies norm_weight * (x + residual), rounded once, and
scales the product by 1/rms at the end, from the row's sum of squares gathered along the way (summed
over the slices with the partial tiles). So the norm rounds differently from ops.rms_norm (which
rounds x / rms before the weight multiplies it): equal to it within the dtype's rounding, not bit for
bit. The kernels themselves are in allmos.linear.kernels.gemm_kernel.
"""

from __future__ import annotations

import torch
import triton

from allmos.linear.kernels.gemm_config import resolve_config
from allmos.linear.kernels.gemm_kernel import ADD_RMS_NORM, PLAIN, SILU_MUL, rows_linear_kernel
from allmos.linear.kernels.gemv_checks import check_like, check_rows, check_weight
from allmos.triton_shared.support import pdl_launch

MAX_GEMM_ROWS = 32  # linear=triton's limit: from 64 rows on cuBLAS (+ the compiled norm or SiLU) was faster
MAX_ROWS = 4096  # the kernels' own limit (they work at any row count; tests and gemm_bench go to 256)
MAX_SPLIT_TILES = 4096  # output tiles one split-K launch may have: the size of the counter tensor


# ---------------------------------------------------------------------------------------------------------
# Launch
# ---------------------------------------------------------------------------------------------------------


def new_split_counters(device) -> torch.Tensor:
    """The zeroed per-tile counters split-K launches count in (and leave zeroed); one per device."""
    return torch.zeros(MAX_SPLIT_TILES, dtype=torch.int32, device=device)


def _grid(rows: int, n: int, config: dict) -> tuple[int, int, int]:
    return (triton.cdiv(n, config["block_n"]), triton.cdiv(rows, config["block_m"]), config["split_k"])


def _k_per_split(k: int, config: dict) -> int:
    """The K range of one slice: whole chunks, the slices together covering K."""
    return triton.cdiv(k, config["block_k"] * config["split_k"]) * config["block_k"]


def _split_workspace(name: str, x: torch.Tensor, grid: tuple, config: dict, counters: torch.Tensor | None):
    """(partial tiles, counters) for a split-K launch; (x, x), pointers never followed, without split-K."""
    if config["split_k"] == 1:
        return x, x
    tiles = grid[0] * grid[1]
    if counters is None or counters.dtype != torch.int32 or counters.device != x.device or counters.numel() < tiles:
        raise ValueError(f"{name}: split_k={config['split_k']} needs int32 counters on {x.device} for {tiles} tiles")
    if tiles > MAX_SPLIT_TILES:
        raise ValueError(f"{name}: {tiles} output tiles exceed the {MAX_SPLIT_TILES} split-K counters")
    shape = (tiles, config["split_k"], config["block_m"] * (config["block_n"] + 1))  # tile and row squares
    return torch.empty(shape, dtype=torch.float32, device=x.device), counters


def _launch(name, a, residual, norm_weight, weight, y, new_residual, eps, prologue, config, counters, pdl):
    rows, (n, k) = a.shape[0], weight.shape
    grid = _grid(rows, n, config)
    partials, counters = _split_workspace(name, a, grid, config, counters)
    rows_linear_kernel[grid](
        a, residual, norm_weight, weight, y, new_residual, partials, counters,
        rows, n, k, float(eps), config["split_k"], _k_per_split(k, config),
        a.stride(0), residual.stride(0), new_residual.stride(0), weight.stride(0), y.stride(0),
        PROLOGUE=prologue,
        HAS_RESIDUAL=residual is not a,
        BLOCK_M=config["block_m"],
        BLOCK_N=config["block_n"],
        BLOCK_K=config["block_k"],
        num_warps=config["num_warps"],
        num_stages=config["num_stages"],
        **pdl_launch(name, pdl, a.device),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------------------


def rows_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    *,
    counters: torch.Tensor | None = None,
    config: dict | None = None,
    pdl: bool = False,
) -> torch.Tensor:
    """x [M, K] (1 <= M <= MAX_ROWS, rows contiguous) @ weight [N, K]^T -> [M, N] in x's dtype.
    `counters` (new_split_counters) are needed when the config splits K; `config` overrides the default's
    keys (allmos.linear.kernels.gemm_config)."""
    name = "rows_linear"
    check_weight(name, x, weight)
    n, k = weight.shape
    check_rows(name, "x", x, k, MAX_ROWS)
    config = resolve_config(name, x.shape[0], n, k, config)
    y = torch.empty(x.shape[0], n, dtype=x.dtype, device=x.device)
    _launch(name, x, x, x, weight, y, x, 0.0, PLAIN, config, counters, pdl)
    return y


def add_rms_norm_rows_linear(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    norm_weight: torch.Tensor,
    eps: float,
    weight: torch.Tensor,
    *,
    counters: torch.Tensor | None = None,
    config: dict | None = None,
    pdl: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(ops.add_rms_norm(x, residual, norm_weight, eps) @ weight^T, x + residual) in one kernel: x, residual
    [M, K] (1 <= M <= MAX_ROWS, rows contiguous), norm_weight [K], weight [N, K], all of x's dtype.
    The new residual is a fresh tensor; with residual None the norm is ops.rms_norm(x) and the returned
    residual is x itself, as the model's first layer does."""
    name = "add_rms_norm_rows_linear"
    check_weight(name, x, weight)
    n, k = weight.shape
    check_rows(name, "x", x, k, MAX_ROWS)
    check_like(name, "norm_weight", norm_weight, (k,), x)
    if residual is not None:
        check_like(name, "residual", residual, tuple(x.shape), x)
    m = x.shape[0]
    config = resolve_config(name, m, n, k, config)
    y = torch.empty(m, n, dtype=x.dtype, device=x.device)
    new_residual = x if residual is None else torch.empty(m, k, dtype=x.dtype, device=x.device)
    residual_in = x if residual is None else residual  # x itself tells the kernel there is none
    _launch(name, x, residual_in, norm_weight, weight, y, new_residual, eps, ADD_RMS_NORM, config, counters, pdl)
    return y, new_residual


def silu_mul_rows_linear(
    gate_up: torch.Tensor,
    weight: torch.Tensor,
    *,
    counters: torch.Tensor | None = None,
    config: dict | None = None,
    pdl: bool = False,
) -> torch.Tensor:
    """ops.silu_and_mul(gate_up) @ weight^T in one kernel: gate_up [M, 2K] = [gate | up] (1 <= M <=
    MAX_ROWS, rows contiguous), weight [N, K] -> [M, N] in gate_up's dtype."""
    name = "silu_mul_rows_linear"
    check_weight(name, gate_up, weight)
    n, k = weight.shape
    check_rows(name, "gate_up", gate_up, 2 * k, MAX_ROWS)
    m = gate_up.shape[0]
    config = resolve_config(name, m, n, k, config)
    y = torch.empty(m, n, dtype=gate_up.dtype, device=gate_up.device)
    g = gate_up
    _launch(name, g, g, g, weight, y, g, 0.0, SILU_MUL, config, counters, pdl)
    return y
