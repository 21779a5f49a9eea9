"""Decode steps replayed from CUDA graphs captured for bucketed batch sizes.

Buckets are 1, 2, 4, 8, then every 16 up to max_num_seqs; a batch pads up to the next bucket
(padding rows have slot -1 and context length 0). A backend whose decode work follows the
block-table width (`GraphMode.PER_BATCH_AND_TABLE_WIDTH`) also gets one graph per power-of-two width, and the
table pads up to the next width. All graphs share one memory pool. Prefill steps and batches above
the largest bucket run eagerly.
"""

from __future__ import annotations

import torch

from allmos.attention.backend import GraphMode
from allmos.attention.metadata import AttentionMetadata, common_metadata
from allmos.errors import ConfigError
from allmos.graph_runner.base import GraphRunner
from allmos.registry import register


def graph_buckets(max_num_seqs: int) -> list[int]:
    buckets = [b for b in (1, 2, 4, 8) if b < max_num_seqs] + list(range(16, max_num_seqs + 1, 16))
    if not buckets or buckets[-1] < max_num_seqs:
        buckets.append(max_num_seqs)
    return sorted(set(buckets))


def width_buckets(full_width: int, per_width: bool) -> list[int]:
    """Block-table widths to capture: the full width, or every power of two below it as well."""
    if not per_width:
        return [full_width]
    widths = [1 << i for i in range(full_width.bit_length()) if 1 << i < full_width]
    return widths + [full_width]


def bucket_for(size: int, buckets: list[int]) -> int:
    return next(b for b in buckets if b >= size)


class StaticInputs:
    """The graph's input tensors: every replay copies the step's values into these."""

    def __init__(self, max_batch: int, width: int, block_size: int, max_model_len: int, device):
        self.input_ids = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.positions = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((max_batch,), -1, dtype=torch.int64, device=device)
        self.context_lens = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.cu_seqlens_q = torch.arange(max_batch + 1, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(max_batch, width, dtype=torch.int32, device=device)
        self.block_size = block_size
        self.max_model_len = max_model_len

    def meta(self, batch: int, width: int) -> AttentionMetadata:
        longest = min(width * self.block_size, self.max_model_len)
        return common_metadata(
            False,
            self.slot_mapping[:batch],
            self.context_lens[:batch],
            self.cu_seqlens_q[: batch + 1],
            self.block_tables[:batch, :width],
            [1] * batch,
            [longest] * batch,
            1,
            longest,
            self.block_size,
        )

    def load(self, input_ids, positions, meta: AttentionMetadata, bucket: int) -> None:
        n, width = meta.block_tables.shape
        self.input_ids[:n].copy_(input_ids)
        self.positions[:n].copy_(positions)
        self.slot_mapping[:n].copy_(meta.slot_mapping)
        self.slot_mapping[n:bucket].fill_(-1)
        self.context_lens[:n].copy_(meta.context_lens)
        self.context_lens[n:bucket].fill_(0)
        self.block_tables[:n, :width].copy_(meta.block_tables)


@register("graph_runner", "cuda_graph")
class CudaGraphRunner(GraphRunner):
    devices = ("cuda",)

    @classmethod
    def check(cls, options, where) -> None:
        if where.device != "cuda":
            raise ConfigError("cuda_graphs", f"CUDA graphs need a CUDA device; on {where.device} use cuda_graphs=false")
        if where.attention.graph_mode is GraphMode.NONE:
            name = where.attention.plugin_name
            raise ConfigError("cuda_graphs", f"attention={name} cannot be captured in a CUDA graph")

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.buckets: list[int] = []
        self.widths: list[int] = []
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}  # by (batch, table width)
        self.outputs: dict[tuple[int, int], torch.Tensor] = {}

    def capture(self) -> None:
        limits, block_size, device = self.ctx.limits, self.ctx.block_size, self.ctx.device
        self.buckets = graph_buckets(limits.max_num_seqs)
        full_width = (limits.max_model_len + block_size - 1) // block_size
        per_width = self.backend.graph_mode is GraphMode.PER_BATCH_AND_TABLE_WIDTH
        self.widths = width_buckets(full_width, per_width)
        self.static = StaticInputs(self.buckets[-1], full_width, block_size, limits.max_model_len, device)
        pool = None
        with torch.inference_mode():
            # largest first: the shared pool is sized once
            for key in sorted(((b, w) for b in self.buckets for w in self.widths), reverse=True):
                self.forward_static(*key)  # warm-up: lazy initialisation and compilation stay outside
                torch.cuda.synchronize(device)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph, pool=pool):
                    self.outputs[key] = self.forward_static(*key)
                pool = graph.pool()
                self.graphs[key] = graph
        torch.cuda.synchronize(device)

    def forward_static(self, batch: int, width: int) -> torch.Tensor:
        s = self.static
        meta = self.backend.build_metadata(s.meta(batch, width))
        return self.model(s.input_ids[:batch], s.positions[:batch], meta)

    def forward(self, input_ids, positions, meta):
        n = input_ids.shape[0]
        if meta.is_prefill or not self.graphs or n > self.buckets[-1]:  # no graphs yet: memory profiling
            return self.run_eager(input_ids, positions, meta)
        key = (bucket_for(n, self.buckets), bucket_for(meta.block_tables.shape[1], self.widths))
        self.static.load(input_ids, positions, meta, key[0])
        self.graphs[key].replay()
        self.stats.count("graph_forwards")
        return self.outputs[key][:n]
