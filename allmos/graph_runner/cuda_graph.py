"""Decode steps replayed from CUDA graphs captured for bucketed batch sizes.

`scope` (the switch `cuda_graphs`): `step` (cuda_graphs=true) captures the whole decode step after its
inputs: the model's forward, the LM head and, for a sampler that can be captured (its draws come from the
step's seed tensor: sampler=triton), the sampling; `forward` (cuda_graphs=forward) the model's forward
only, the LM head and the sampler then launched one by one from the host after each replay.

Buckets are 1, 2, 4, 8, then every 16 up to max_num_seqs; a batch pads up to the next bucket
(padding rows have slot -1 and context length 0). A backend whose decode work follows the
block-table width (`GraphMode.PER_BATCH_AND_TABLE_WIDTH`) also gets one graph per power-of-two width, and the
table pads up to the next width. All graphs share one memory pool. Prefill steps and batches above
the largest bucket run eagerly.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from allmos.attention.backend import GraphMode
from allmos.attention.metadata import AttentionMetadata, common_metadata
from allmos.errors import ConfigError
from allmos.graph_runner.base import GraphRunner
from allmos.registry import PluginOptions, register
from allmos.triton_shared.support import require_triton

SCOPES = ("step", "forward")


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
    """The graph's input tensors: every replay loads the step's values into these, with a copy or fill per
    tensor, or (`fused`: fused_graph_inputs=true) with one kernel (allmos.graph_runner.kernels.static_inputs)."""

    def __init__(self, max_batch: int, width: int, block_size: int, max_model_len: int, device, fused=False):
        self.input_ids = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.positions = torch.zeros(max_batch, dtype=torch.int64, device=device)
        self.slot_mapping = torch.full((max_batch,), -1, dtype=torch.int64, device=device)
        self.context_lens = torch.zeros(max_batch, dtype=torch.int32, device=device)
        self.cu_seqlens_q = torch.arange(max_batch + 1, dtype=torch.int32, device=device)
        self.block_tables = torch.zeros(max_batch, width, dtype=torch.int32, device=device)
        self.temperatures = torch.zeros(max_batch, dtype=torch.float32, device=device)
        self.seed = torch.zeros(1, dtype=torch.int64, device=device)
        self.block_size = block_size
        self.max_model_len = max_model_len
        self.fused = fused
        self.kernel_load = None  # the loading kernel's launcher, imported once (triton only where asked for)
        if fused:
            from allmos.graph_runner.kernels.static_inputs import load_static_inputs

            self.kernel_load = load_static_inputs

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

    def load(self, input_ids, positions, meta: AttentionMetadata, bucket: int, sampling=None) -> None:
        """The step's inputs, padded to `bucket` rows, and given `sampling` = (temperatures, seed) the
        sampler's."""
        if self.kernel_load is not None:
            self.kernel_load(self, input_ids, positions, meta, bucket, sampling)
            return
        self.copy_inputs(input_ids, positions, meta, bucket)
        if sampling is not None:
            self.copy_sampling(*sampling)

    def warm_up(self, sampling: bool) -> None:
        """Compile the loading kernel (fused) by loading the first row onto itself."""
        if self.fused:
            extra = (self.temperatures[:1], self.seed) if sampling else None
            self.load(self.input_ids[:1], self.positions[:1], self.meta(1, 1), 1, extra)

    def copy_inputs(self, input_ids, positions, meta: AttentionMetadata, bucket: int) -> None:
        n, width = meta.block_tables.shape
        self.input_ids[:n].copy_(input_ids)
        self.positions[:n].copy_(positions)
        self.slot_mapping[:n].copy_(meta.slot_mapping)
        self.slot_mapping[n:bucket].fill_(-1)
        self.context_lens[:n].copy_(meta.context_lens)
        self.context_lens[n:bucket].fill_(0)
        self.block_tables[:n, :width].copy_(meta.block_tables)

    def copy_sampling(self, temperatures: torch.Tensor, seed: torch.Tensor) -> None:
        """Padding rows keep their last temperature; their tokens are never read."""
        self.temperatures[: temperatures.shape[0]].copy_(temperatures)
        self.seed.copy_(seed)


@dataclass
class CudaGraphOptions(PluginOptions):
    scope: str = "step"  # step: forward + LM head (+ sampler when capturable); forward: the model's forward
    fused_inputs: bool = True  # one Triton kernel loads a replay's inputs (the switch fused_graph_inputs)


@register("graph_runner", "cuda_graph", options=CudaGraphOptions)
class CudaGraphRunner(GraphRunner):
    devices = ("cuda",)

    @classmethod
    def check(cls, options, where) -> None:
        if where.device != "cuda":
            raise ConfigError("cuda_graphs", f"CUDA graphs need a CUDA device; on {where.device} use cuda_graphs=false")
        if where.attention.graph_mode is GraphMode.NONE:
            name = where.attention.plugin_name
            raise ConfigError("cuda_graphs", f"attention={name} cannot be captured in a CUDA graph")
        if options.scope not in SCOPES:
            raise ConfigError("cuda_graphs", f"unknown graph scope {options.scope!r} (expected one of {SCOPES})")
        if options.fused_inputs:
            require_triton("fused_graph_inputs")

    def __init__(self, options, ctx):
        super().__init__(options, ctx)
        self.buckets: list[int] = []
        self.widths: list[int] = []
        self.graphs: dict[tuple[int, int], torch.cuda.CUDAGraph] = {}  # by (batch, table width)
        self.outputs: dict[tuple[int, int], torch.Tensor | tuple] = {}  # hidden, or (logits, tokens or None)
        self.whole_step = options.scope == "step"
        self.sampler = ctx.sampler if self.whole_step and ctx.sampler is not None and ctx.sampler.capturable else None

    def capture(self) -> None:
        limits, block_size, device = self.ctx.limits, self.ctx.block_size, self.ctx.device
        self.buckets = graph_buckets(limits.max_num_seqs)
        full_width = (limits.max_model_len + block_size - 1) // block_size
        per_width = self.backend.graph_mode is GraphMode.PER_BATCH_AND_TABLE_WIDTH
        self.widths = width_buckets(full_width, per_width)
        fused = self.options.fused_inputs
        self.static = StaticInputs(self.buckets[-1], full_width, block_size, limits.max_model_len, device, fused)
        self.static.warm_up(self.sampler is not None)  # the loading kernel compiles here, not in a timed step
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

    def forward_static(self, batch: int, width: int) -> torch.Tensor | tuple:
        s = self.static
        meta = self.backend.build_metadata(s.meta(batch, width))
        hidden = self.model(s.input_ids[:batch], s.positions[:batch], meta)
        if not self.whole_step:
            return hidden
        logits = self.model.compute_logits(hidden)
        tokens = None if self.sampler is None else self.sampler.forward(logits, s.temperatures[:batch], s.seed)
        return logits, tokens

    def replayable(self, num_tokens: int, meta) -> bool:
        """Decode steps up to the largest bucket, once captured (before: the memory profiling runs)."""
        return not meta.is_prefill and bool(self.graphs) and num_tokens <= self.buckets[-1]

    def replay(self, input_ids, positions, meta, sampling=None) -> tuple[int, int]:
        n = input_ids.shape[0]
        key = (bucket_for(n, self.buckets), bucket_for(meta.block_tables.shape[1], self.widths))
        self.static.load(input_ids, positions, meta, key[0], sampling)
        self.graphs[key].replay()
        self.stats.count("graph_forwards")
        return key

    def forward(self, input_ids, positions, meta):
        if self.whole_step or not self.replayable(input_ids.shape[0], meta):  # whole-step graphs end in logits
            return self.run_eager(input_ids, positions, meta)
        return self.outputs[self.replay(input_ids, positions, meta)][: input_ids.shape[0]]

    def step(self, inputs, num_seqs):
        if not (self.whole_step and self.replayable(inputs.input_ids.shape[0], inputs.meta)):
            return super().step(inputs, num_seqs)
        sampling = (inputs.temperatures, inputs.seed) if self.sampler is not None else None
        logits, tokens = self.outputs[self.replay(inputs.input_ids, inputs.positions, inputs.meta, sampling)]
        if tokens is not None:
            self.stats.count("graph_sampled_steps")
        return logits[:num_seqs], None if tokens is None else tokens[:num_seqs]
