"""FP8 (e4m3) quantization of K/V in torch: the CPU path and the reference of the Triton kernels.

A (token, kv head) row x is stored as fp8(x / s) with its scale s beside the pages: s = amax|x| / 448
(the row's largest value lands on e4m3's largest finite value, so nothing saturates), or one fixed
scale for everything (kv_store.fp8_scale), saturating at +-448. Dequantization is fp8 * s.
"""

from __future__ import annotations

import torch

FP8 = torch.float8_e4m3fn
FP8_MAX = 448.0  # e4m3fn's largest finite value


def row_scales(x: torch.Tensor, fixed: float | None) -> torch.Tensor:
    """x [..., head_dim] -> its scales [...] (float32); an all-zero row gets 1."""
    if fixed is not None:
        return torch.full(x.shape[:-1], fixed, dtype=torch.float32, device=x.device)
    amax = x.abs().amax(-1).float()
    return torch.where(amax > 0, amax / FP8_MAX, 1.0)


def quantize(x: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """x [..., head_dim] divided by its rows' scales, saturated to +-448, in fp8."""
    return (x.float() / scales.unsqueeze(-1)).clamp(-FP8_MAX, FP8_MAX).to(FP8)


def dequantize(x: torch.Tensor, scales: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """fp8 x [..., head_dim] times its rows' scales [...], in `dtype`."""
    return (x.float() * scales.unsqueeze(-1)).to(dtype)


def write_scales(scales: torch.Tensor, slots: torch.Tensor, values: torch.Tensor) -> None:
    """values [tokens, heads] into the head-major scales [blocks, heads, block_size] at flat `slots`."""
    block_size = scales.shape[-1]
    scales[slots // block_size, :, slots % block_size] = values


def gather_scales(scales: torch.Tensor, block_table: torch.Tensor) -> torch.Tensor:
    """The scales of the pages `block_table` [..., width] in token order: [..., width * block_size, heads]."""
    return scales[block_table].transpose(-1, -2).flatten(-3, -2)
