"""The plugin that runs a decoder layer's projections, with the element-wise op before each one that
has one: RMSNorm (+ residual add) before qkv and gate_up, SiLU-and-mul before down."""

from __future__ import annotations

from abc import ABC

import torch

from allmos.layers.embedding import ParallelLMHead
from allmos.layers.linear import ShardedLinear
from allmos.layers.norm import RMSNorm
from allmos.registry import Plugin
from allmos.rope.base import QKVRope


class LinearPlugin(Plugin, ABC):
    """The defaults are the unfused modules: the op, then the projection (cuBLAS through F.linear)."""

    takes_rope = False  # whether `norm_project_qkv` can apply a QKVRope in the projection's epilogue

    def project(self, proj: ShardedLinear | ParallelLMHead, x: torch.Tensor) -> torch.Tensor:
        """proj(x): a projection or the LM head (both have `weight` [out, in] and `finish`)."""
        return proj(x)

    def norm_project(
        self, norm: RMSNorm, x: torch.Tensor, residual: torch.Tensor | None, proj: ShardedLinear
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(proj(norm(x + residual)), x + residual); without a residual (the first layer) x is it."""
        if residual is None:
            normed, residual = norm(x), x
        else:
            normed, residual = norm(x, residual)
        return self.project(proj, normed), residual

    def norm_project_qkv(
        self, norm: RMSNorm, x: torch.Tensor, residual: torch.Tensor | None, proj: ShardedLinear, rope: QKVRope
    ) -> tuple[torch.Tensor, torch.Tensor, bool]:
        """norm_project for the qkv projection, offered the step's q/k norm, RoPE and K/V store (`rope`) to
        apply in its epilogue; the third value says whether it did. Here: never."""
        return (*self.norm_project(norm, x, residual, proj), False)

    def act_project(self, act, gate_up: torch.Tensor, proj: ShardedLinear) -> torch.Tensor:
        """proj(act(gate_up)), act being the model's SiLU-and-mul."""
        return self.project(proj, act(gate_up))
