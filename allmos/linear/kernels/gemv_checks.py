"""Input checks of the Triton linear kernels (allmos.linear.kernels.gemv and .gemm): shapes, strides,
dtypes and devices, refused with the kernel's name before anything launches."""

from __future__ import annotations

import torch

MAX_ROWS = 8  # beyond this cuBLAS's tensor-core tiles win (measured with allmos.microbench.linear_bench)


def check_rows(name: str, what: str, x: torch.Tensor, width: int, max_rows: int = MAX_ROWS) -> None:
    if x.dim() != 2 or x.shape[1] != width or not 1 <= x.shape[0] <= max_rows:
        raise ValueError(f"{name}: {what} {tuple(x.shape)} is not [1..{max_rows}, {width}]")
    if x.stride(1) != 1:
        raise ValueError(f"{name}: {what} rows must be contiguous (stride {x.stride()})")


def check_weight(name: str, x: torch.Tensor, weight: torch.Tensor) -> None:
    if weight.dim() != 2 or weight.stride(1) != 1 or weight.shape[0] < 1:
        raise ValueError(f"{name}: weight {tuple(weight.shape)} (stride {weight.stride()}) is not [N, K] row-major")
    if weight.dtype != x.dtype or weight.device != x.device:
        raise ValueError(f"{name}: weight is {weight.dtype} on {weight.device}, input {x.dtype} on {x.device}")


def check_like(name: str, what: str, tensor: torch.Tensor, shape: tuple, x: torch.Tensor) -> None:
    if tuple(tensor.shape) != shape or tensor.dtype != x.dtype or tensor.device != x.device:
        raise ValueError(
            f"{name}: {what} is {tuple(tensor.shape)} {tensor.dtype} on {tensor.device}, "
            f"expected {shape} {x.dtype} on {x.device}"
        )
    if tensor.stride(-1) != 1:
        raise ValueError(f"{name}: {what} must be contiguous in its last dimension")
