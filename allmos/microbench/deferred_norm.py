"""A decode layer's projections with their input norms deferred: the math of a probe (rows_chain's `deferred`
variant), not an engine path.

A pre-norm layer runs a kernel for each add+RMSNorm: h = x + residual, then rms_norm(h) * w feeds the
projection. Deferred, the projection reads h itself through W diag(w) (the norm weight folded into the weight
once), and its output rows are scaled by 1/rms(h) afterwards, by the kernel that runs next anyway: the rope
kernel for qkv (the q/k norms do not see the scale, and V could be scaled where it is stored) and the SiLU for
gate_up. The residual add moves into the GEMM that produces the stream: o and down compute h + a W^T in place
(cuBLAS's beta = 1). That is two kernels a layer fewer, at the cost of another rounding (W diag(w) is rounded to
the dtype, the sum is rounded once): an approximate change, which the engine would need as its own switch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def fold_norms(weights: dict) -> dict:
    """A layer's weights with norm1 folded into qkv and norm2 into gate_up (W diag(w), rounded to W's dtype)."""
    folded = dict(weights)
    for proj, norm in (("qkv", "norm1"), ("gate_up", "norm2")):
        w = weights[proj]
        folded[proj] = (w.float() * weights[norm].float()).to(w.dtype)
    return folded


def row_scale(h: torch.Tensor, eps: float) -> torch.Tensor:
    """1/rms of each row of h, in float32 [rows, 1]."""
    return torch.rsqrt(h.float().pow(2).mean(-1, keepdim=True) + eps)


def silu_mul_scaled(gate_up: torch.Tensor, h: torch.Tensor, eps: float) -> torch.Tensor:
    """silu(s g) * (s u) with s = 1/rms(h) per row: the SiLU kernel finishing gate_up's deferred norm."""
    gate, up = (gate_up.float() * row_scale(h, eps)).chunk(2, dim=-1)
    return (F.silu(gate) * up).to(gate_up.dtype)


def deferred_layer(h, weights: dict, eps: float, q_width: int, silu_mul=silu_mul_scaled, attention_out=None):
    """The residual stream h [rows, hidden] after one layer of rows_chain's stand-in (qkv, o on q's columns,
    gate_up, SiLU, down), with the norms deferred and folded (`weights` from fold_norms). h is updated in place
    and returned. o reads `attention_out` where given (a stand-in for attention's output, so that a timed chain
    needs no extra kernel), else qkv's first q_width columns scaled by 1/rms(h), as the unfused layer has them."""
    qkv = F.linear(h, weights["qkv"])
    if attention_out is None:
        attention_out = (qkv[:, :q_width].float() * row_scale(h, eps)).to(h.dtype)
    h.addmm_(attention_out, weights["o"].t())
    act = silu_mul(F.linear(h, weights["gate_up"]), h, eps)
    return h.addmm_(act, weights["down"].t())
