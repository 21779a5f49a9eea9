"""Linear layers that shard across tensor-parallel ranks and load Hugging Face weights.

Each parameter carries a `weight_loader(param, loaded, shard_id)` that copies this rank's slice
of a checkpoint tensor into the right place, so packed q/k/v and gate/up projections load from
their separate checkpoint tensors, and returns the part of the parameter it filled. Every loader
checks the whole checkpoint tensor's shape before it slices, so a tensor too large is refused, not
cut to size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from allmos.layers.parallel import ParallelInfo


def check_shape(name: str, expected: torch.Size, got: torch.Size) -> None:
    if tuple(expected) != tuple(got):
        raise ValueError(f"weight {name}: expected shape {tuple(expected)}, checkpoint has {tuple(got)}")


class ShardedLinear(nn.Module):
    """y = x W^T (+ b) with W [out_features, in_features] already divided by the shard rule."""

    def __init__(self, in_features: int, out_features: int, bias: bool, tp: ParallelInfo):
        super().__init__()
        self.tp = tp
        self.weight = nn.Parameter(torch.empty(out_features, in_features), requires_grad=False)
        self.weight.weight_loader = self.weight_loader
        self.weight.checkpoint_shape = self.checkpoint_shape
        self.bias = None
        if bias:
            self.bias = nn.Parameter(torch.empty(out_features), requires_grad=False)
            self.bias.weight_loader = self.weight_loader
            self.bias.checkpoint_shape = self.checkpoint_shape

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> torch.Tensor:
        check_shape("(replicated)", param.shape, loaded.shape)
        param.data.copy_(loaded)
        return param.data

    def checkpoint_shape(self, param: nn.Parameter, shard_id=None) -> tuple[int, ...]:
        """The shape of the checkpoint tensor this parameter (part `shard_id`) is loaded from."""
        return tuple(param.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        """What follows the matmul x W^T: the bias (and, row-parallel, the sum over ranks first), so a
        kernel that computes the matmul its own way (allmos.linear) finishes the layer the same way."""
        return y + self.bias if self.bias is not None else y


class ReplicatedLinear(ShardedLinear):
    pass


class ColumnParallelLinear(ShardedLinear):
    """Output features split across ranks; no communication."""

    def __init__(self, in_features: int, out_features: int, bias: bool, tp: ParallelInfo):
        super().__init__(in_features, tp.shard(out_features, "output features"), bias, tp)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> torch.Tensor:
        check_shape("(column-parallel)", self.checkpoint_shape(param), loaded.shape)
        size = param.shape[0]
        param.data.copy_(loaded.narrow(0, self.tp.rank * size, size))
        return param.data

    def checkpoint_shape(self, param: nn.Parameter, shard_id=None) -> tuple[int, ...]:
        return (param.shape[0] * self.tp.size, *param.shape[1:])


class MergedColumnParallelLinear(ColumnParallelLinear):
    """Several column-parallel projections stored as one (gate and up)."""

    def __init__(self, in_features: int, output_sizes: list[int], bias: bool, tp: ParallelInfo):
        self.output_sizes = output_sizes
        super().__init__(in_features, sum(output_sizes), bias, tp)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id: int = 0) -> torch.Tensor:
        check_shape(f"(part {shard_id})", self.checkpoint_shape(param, shard_id), loaded.shape)
        size = self.output_sizes[shard_id] // self.tp.size
        offset = sum(self.output_sizes[:shard_id]) // self.tp.size
        target = param.data.narrow(0, offset, size)
        target.copy_(loaded.narrow(0, self.tp.rank * size, size))
        return target

    def checkpoint_shape(self, param: nn.Parameter, shard_id: int = 0) -> tuple[int, ...]:
        return (self.output_sizes[shard_id], *param.shape[1:])


class QKVParallelLinear(ColumnParallelLinear):
    """q, k and v projections in one matrix, split by heads across ranks."""

    def __init__(self, hidden: int, head_dim: int, num_heads: int, num_kv_heads: int, bias: bool, tp: ParallelInfo):
        self.head_dim = head_dim
        self.local_heads = tp.shard(num_heads, "attention heads")
        self.local_kv_heads = tp.shard(num_kv_heads, "key-value heads")
        out = (num_heads + 2 * num_kv_heads) * head_dim
        super().__init__(hidden, out, bias, tp)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id: str = "q") -> torch.Tensor:
        check_shape(f"({shard_id} projection)", self.checkpoint_shape(param, shard_id), loaded.shape)
        q = self.local_heads * self.head_dim
        kv = self.local_kv_heads * self.head_dim
        offset, size = {"q": (0, q), "k": (q, kv), "v": (q + kv, kv)}[shard_id]
        target = param.data.narrow(0, offset, size)
        target.copy_(loaded.narrow(0, self.tp.rank * size, size))
        return target

    def checkpoint_shape(self, param: nn.Parameter, shard_id: str = "q") -> tuple[int, ...]:
        heads = self.local_heads if shard_id == "q" else self.local_kv_heads
        return (heads * self.tp.size * self.head_dim, *param.shape[1:])


class RowParallelLinear(ShardedLinear):
    """Input features split across ranks; the partial outputs are summed with an all-reduce."""

    def __init__(self, in_features: int, out_features: int, bias: bool, tp: ParallelInfo):
        super().__init__(tp.shard(in_features, "input features"), out_features, bias, tp)

    def weight_loader(self, param: nn.Parameter, loaded: torch.Tensor, shard_id=None) -> torch.Tensor:
        check_shape("(row-parallel)", self.checkpoint_shape(param), loaded.shape)
        if param.dim() == 1:  # the bias is added once, after the reduction
            param.data.copy_(loaded)
            return param.data
        size = param.shape[1]
        param.data.copy_(loaded.narrow(1, self.tp.rank * size, size))
        return param.data

    def checkpoint_shape(self, param: nn.Parameter, shard_id=None) -> tuple[int, ...]:
        if param.dim() == 1:
            return tuple(param.shape)
        return (param.shape[0], param.shape[1] * self.tp.size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.finish(F.linear(x, self.weight))

    def finish(self, y: torch.Tensor) -> torch.Tensor:
        y = self.tp.all_reduce(y)
        return y + self.bias if self.bias is not None else y
