import torch
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm; given a residual, adds it first and returns (normed, new residual)."""

    def __init__(self, size: int, eps: float, ops):
        super().__init__()
        self.eps = eps
        self.ops = ops
        self.weight = nn.Parameter(torch.ones(size), requires_grad=False)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None):
        if residual is None:
            return self.ops.rms_norm(x, self.weight, self.eps)
        return self.ops.add_rms_norm(x, residual, self.weight, self.eps)
