"""The small element-wise ops that a fused or compiled build replaces.

`Ops` is handed to every model; with `compile=true` its functions are wrapped in torch.compile,
so the switch changes exactly these ops and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """At least float32 for reductions and rotations; float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    dtype = x.dtype
    x = x.to(compute_dtype(dtype))
    x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x.to(dtype)


def add_rms_norm(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, eps: float
) -> tuple[torch.Tensor, torch.Tensor]:
    residual = x + residual
    return rms_norm(residual, weight, eps), residual


def silu_and_mul(x: torch.Tensor) -> torch.Tensor:
    gate, up = x.chunk(2, dim=-1)
    return F.silu(gate) * up


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: [tokens, heads, head_dim]; cos, sin: [tokens, head_dim // 2] (neox-style halves)."""
    dtype = x.dtype
    x1, x2 = x.to(compute_dtype(dtype)).chunk(2, dim=-1)
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(dtype)


def rope_qk(
    positions: torch.Tensor, q: torch.Tensor, k: torch.Tensor, cos_cache: torch.Tensor, sin_cache: torch.Tensor
):
    """RoPE on q and k with the cos/sin lookup inside, so that compiled the lookups fuse into the
    rotations (two gathers fewer per layer)."""
    cos, sin = cos_cache[positions], sin_cache[positions]
    return apply_rope(q, cos, sin), apply_rope(k, cos, sin)


@dataclass(frozen=True)
class Ops:
    rms_norm: Callable = rms_norm
    add_rms_norm: Callable = add_rms_norm
    silu_and_mul: Callable = silu_and_mul
    apply_rope: Callable = apply_rope
    rope_qk: Callable = rope_qk

    @classmethod
    def build(cls, compiled: bool) -> Ops:
        if not compiled:
            return cls()
        return cls(**{name: torch.compile(fn, dynamic=True) for name, fn in vars(cls()).items()})
