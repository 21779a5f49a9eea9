"""Owns the model, its KV cache, the graph runner and the sampler; runs one step at a time."""

from __future__ import annotations

import gc
from contextlib import nullcontext
from dataclasses import replace
from typing import Any

import torch

from allmos.attention.backend import HeadShape
from allmos.attention.layer import PagedAttention
from allmos.batch import LaunchedStep, ScheduledBatch, StepOutput
from allmos.config import EngineConfig
from allmos.engine import kv_cache
from allmos.engine.readback import TokenReadback
from allmos.engine.staging import HostStaging
from allmos.engine.step_inputs import StepInputs, build_step_inputs
from allmos.layers.ops import Ops
from allmos.layers.parallel import ParallelInfo
from allmos.models.context import ModelContext
from allmos.models.decoder import head_dim_of
from allmos.models.loader import build_model, load_checkpoint, randomize
from allmos.progress import phase
from allmos.registry import build
from allmos.sampling_params import SamplingParams
from allmos.sequence import Sequence
from allmos.stats import EngineStats


def rank_device(device: str, tp: ParallelInfo) -> torch.device:
    """cuda:<rank> for each tensor-parallel rank on CUDA; the CPU otherwise."""
    return torch.device("cuda", tp.rank) if device == "cuda" else torch.device("cpu")


class ModelRunner:
    closed = False  # one rank in this process: it runs steps as long as the engine lives

    def __init__(
        self,
        config: EngineConfig,
        hf_config: Any,
        weights: str,
        tp: ParallelInfo | None = None,
        stats: EngineStats | None = None,
    ):
        """`stats`: the owner this rank's graph runner reports its forwards into (the engine's)."""
        self.config = config
        self.hf_config = hf_config
        self.tp = tp or ParallelInfo()
        self.device = rank_device(config.resolved_device, self.tp)
        self.dtype = config.torch_dtype
        self.staging = HostStaging(self.device)
        self.token_readback = TokenReadback(self.device, config.max_num_seqs)
        ctx, choices = config.build_context(self.device), config.plugin_choices()
        ctx = replace(ctx, stats=stats or EngineStats())
        self.kv_store = build("kv_store", choices["kv_store"], ctx)
        self.qk_rope = build("rope", choices["rope"], ctx)
        self.linear = build("linear", choices["linear"], ctx)
        self.attention_backend = build("attention", choices["attention"], replace(ctx, heads=self.head_shape()))
        self.model = build_model(hf_config, self.model_context(), self.device, self.dtype)
        with phase("weights: loading the checkpoint" if weights == "real" else "weights: drawing random values"):
            self.load_weights(weights)
        self.sampler = build("sampler", choices["sampler"], ctx)
        graph_ctx = replace(ctx, model=self.model, attention=self.attention_backend, sampler=self.sampler)
        self.graph_runner = build("graph_runner", choices["graph_runner"], graph_ctx)
        self.cache_shape = self.make_cache_shape()
        compiling = " (compiling)" if config.compile else ""
        with phase(f"KV cache: sizing from the largest steps{compiling}"):
            self.num_blocks = self.size_cache()
            self.bind_cache(kv_cache.allocate(self.cache_shape, self.num_blocks, self.device))
        with phase("CUDA graphs: capturing") if config.cuda_graphs else nullcontext():
            self.graph_runner.capture()

    def describe(self) -> dict[str, Any]:
        """What runs: the plugins, and the KV cache's size."""
        return {
            "attention_backend": self.attention_backend.plugin_name,
            "kv_store": self.kv_store.plugin_name,
            "kv_store_in_rope": self.rope_writes_kv(),
            "rope_in_qkv": self.rope_in_qkv(),
            "rope": self.qk_rope.plugin_name,
            "linear": self.linear.plugin_name,
            "sampler": self.sampler.plugin_name,
            "num_kv_blocks": self.num_blocks,
            "kv_cache_dtype": str(self.cache_shape.dtype).removeprefix("torch."),
        }

    def model_context(self) -> ModelContext:
        max_positions = max(self.config.max_model_len, getattr(self.hf_config, "max_position_embeddings", 0))
        ops = Ops.build(self.config.compile)
        return ModelContext(self.tp, ops, self.make_attention, max_positions, self.linear)

    def rope_writes_kv(self) -> bool:
        return self.qk_rope.writes_kv and self.kv_store.fuses_into_rope()

    def rope_in_qkv(self) -> bool:
        return self.qk_rope.fuses_into_qkv() and self.linear.takes_rope

    def head_shape(self) -> HeadShape:
        cfg, head_dim = self.hf_config, head_dim_of(self.hf_config)
        heads = self.tp.shard(cfg.num_attention_heads, "attention heads")
        kv_heads = self.tp.shard(cfg.num_key_value_heads, "key-value heads")
        return HeadShape(heads, kv_heads, head_dim, head_dim**-0.5)

    def make_attention(self, heads: int, kv_heads: int, head_dim: int, scale: float) -> PagedAttention:
        if HeadShape(heads, kv_heads, head_dim, scale) != self.attention_backend.heads:
            raise ValueError(f"a layer's heads {heads}/{kv_heads}x{head_dim} differ from the model config's")
        return PagedAttention(
            self.attention_backend, self.kv_store, self.qk_rope, self.rope_writes_kv(), self.rope_in_qkv()
        )

    def load_weights(self, weights: str) -> None:
        if weights == "real":
            load_checkpoint(self.model, self.config.model, self.config.load_format)
        else:
            randomize(self.model, self.config.seed, getattr(self.hf_config, "initializer_range", 0.02))

    def make_cache_shape(self) -> kv_cache.CacheShape:
        num_kv_heads = self.tp.shard(self.hf_config.num_key_value_heads, "key-value heads")
        return kv_cache.CacheShape(
            self.hf_config.num_hidden_layers,
            num_kv_heads,
            head_dim_of(self.hf_config),
            self.config.block_size,
            self.config.kv_cache_torch_dtype,
            getattr(self.kv_store.options, "fp8_scale", None),
        )

    def size_cache(self) -> int:
        if self.config.num_kv_blocks is not None:
            return self.config.num_kv_blocks
        if self.device.type == "cpu":
            return kv_cache.cpu_num_blocks(self.config, self.cache_shape)
        peak = self.profile_activation_peak()
        return kv_cache.cuda_num_blocks(self.config, self.cache_shape, self.device, peak)

    def profile_activation_peak(self) -> int:
        """Run the largest prefill and decode steps once over a small throw-away cache (the block
        tables may repeat blocks: only shapes matter); return the memory peak without that cache."""
        c = self.config
        blocks_per_seq = (c.max_model_len + c.block_size - 1) // c.block_size
        gc.collect()  # an earlier engine that only the collector frees would count as this one's peak
        torch.cuda.empty_cache()
        scratch = kv_cache.allocate(self.cache_shape, blocks_per_seq, self.device)
        self.bind_cache(scratch)
        torch.cuda.reset_peak_memory_stats(self.device)
        with torch.inference_mode():
            for batch in dummy_batches(c, blocks_per_seq):  # locally on each rank: no step is led here
                inputs = build_step_inputs(batch, c.block_size, self.device, self.staging)
                self.step_outputs(inputs, len(batch))
        torch.cuda.synchronize(self.device)
        peak = torch.cuda.max_memory_allocated(self.device) - scratch.nbytes
        self.bind_cache(None)
        del scratch
        torch.cuda.empty_cache()
        return peak

    def bind_cache(self, cache: kv_cache.PagedCache | None) -> None:
        self.kv_cache = cache
        for i, layer in enumerate(self.model.attention_layers()):
            layer.bind_cache(*cache.layer(i) if cache is not None else (None, None))

    @torch.inference_mode()
    def launch(self, batch: ScheduledBatch, prev: LaunchedStep | None = None) -> LaunchedStep:
        """Queue the step's work on the device and return without waiting for it; `prev` is the
        step still running before a look-ahead batch."""
        inputs = self.prepare(batch, prev)
        logits, tokens = self.step_outputs(inputs, len(batch))
        k = max(s.params.logprobs for s in batch.seqs)
        tops = torch.log_softmax(logits.float(), dim=-1).topk(k, dim=-1) if k else None
        return LaunchedStep(batch, tokens, self.token_readback.start(tokens), tops)

    def prepare(self, batch: ScheduledBatch, prev: LaunchedStep | None) -> StepInputs:
        prev_tokens = prev.tokens if prev is not None else None
        seed = self.sampler.next_seed()
        return build_step_inputs(batch, self.config.block_size, self.device, self.staging, prev_tokens, seed)

    def collect(self, step: LaunchedStep) -> StepOutput:
        """Wait for a launched step; its sampled tokens (and top log-probabilities) on the host."""
        tokens = self.token_readback.finish(step.readback)
        if step.tops is None:
            return StepOutput(tokens)
        values, ids = step.tops
        return StepOutput(tokens, [list(zip(i, v)) for i, v in zip(ids.tolist(), values.tolist())])

    def step_outputs(self, inputs: StepInputs, num_seqs: int) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on the device: ([num_seqs, vocab] logits, [num_seqs] sampled tokens). The graph runner
        runs the forward and the LM head, and the sampler too when its graph captured it (every
        tensor-parallel rank runs this)."""
        logits, tokens = self.graph_runner.step(inputs, num_seqs)
        if tokens is None:
            tokens = self.sampler.forward(logits, inputs.temperatures, inputs.seed)
        return logits, tokens


def dummy_batches(c: EngineConfig, blocks_per_seq: int) -> list[ScheduledBatch]:
    """The largest prefill step and the largest decode step the limits allow."""
    tokens = min(c.max_num_batched_tokens, c.max_num_seqs * c.max_model_len)
    seq_len = min(c.max_model_len, tokens)
    prefill = [Sequence(-1 - i, [0] * seq_len, SamplingParams()) for i in range(max(tokens // seq_len, 1))]
    decode = [Sequence(-1 - i, [0] * c.max_model_len, SamplingParams()) for i in range(c.max_num_seqs)]
    for seq in prefill + decode:
        seq.block_table = list(range(blocks_per_seq))
    for seq in decode:
        seq.num_computed_tokens = c.max_model_len - 1
    return [
        ScheduledBatch(prefill, [seq_len] * len(prefill), is_prefill=True),
        ScheduledBatch(decode, [1] * len(decode), is_prefill=False),
    ]
