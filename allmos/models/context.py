"""What a model needs from the engine to build itself: sharding, ops, attention layers, plugins."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from allmos.attention.layer import PagedAttention
from allmos.layers.ops import Ops
from allmos.layers.parallel import ParallelInfo
from allmos.linear.base import LinearPlugin
from allmos.rope.base import QKRope


@dataclass(frozen=True)
class ModelContext:
    tp: ParallelInfo
    ops: Ops
    # (num_heads, num_kv_heads, head_dim, scale) of this rank -> the layer's attention
    make_attention: Callable[[int, int, int, float], PagedAttention]
    max_positions: int
    qk_rope: QKRope  # applies q/k norm and rotary embedding
    linear: LinearPlugin  # runs the projections (with the norm or activation before them)
    rope_writes_kv: bool = False  # qk_rope writes K/V into the cache (instead of the KV store plugin)
