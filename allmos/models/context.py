"""What a model needs from the engine to build itself: sharding, ops, attention layers, plugins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from allmos.attention.layer import PagedAttention
from allmos.layers.ops import Ops
from allmos.layers.parallel import ParallelInfo
from allmos.linear.base import LinearPlugin


@dataclass(frozen=True)
class ModelContext:
    tp: ParallelInfo
    ops: Ops
    # (num_heads, num_kv_heads, head_dim, scale) of this rank -> the layer's attention, which applies
    # the model's q/k norms and rotary embedding, stores K/V and attends
    make_attention: Callable[[int, int, int, float], PagedAttention]
    max_positions: int
    linear: LinearPlugin  # runs the projections (with the norm or activation before them)
