"""Throughput and roofline figures of one timed run (latencies: allmos.bench.latency)."""

from __future__ import annotations

from allmos.sequence import Sequence
from allmos.stats import EngineStats


def read_sizes(runner) -> tuple[int, int]:
    """The bytes a decode step cannot avoid reading: every weight (as loaded on this rank) and, per context token,
    its K/V over every layer (FP8 pages' scales included)."""
    weight_bytes = sum(p.numel() * p.element_size() for p in runner.model.parameters())
    return weight_bytes, runner.cache_shape.block_bytes // runner.cache_shape.block_size


def decode_bytes(stats: EngineStats, weight_bytes: int, kv_bytes_per_token: int) -> int:
    """The least memory traffic of the decode steps: all weights and every context token's KV once."""
    steps = [r for r in stats.trace if r.kind == "decode"]
    return sum(weight_bytes + r.context_tokens * kv_bytes_per_token for r in steps)


def throughput_metrics(seqs: list[Sequence], stats: EngineStats, wall: float) -> dict:
    output = sum(s.num_output_tokens for s in seqs)
    prompt = sum(s.num_prompt_tokens for s in seqs)
    return {
        "wall_s": wall,
        "output_tokens": output,
        "prompt_tokens": prompt,
        "output_tok_s": output / wall,
        "total_tok_s": (output + prompt) / wall,
        "prefill_s": stats.seconds("prefill"),
        "decode_s": stats.seconds("decode"),
        "mixed_s": stats.seconds("mixed"),  # scheduler=mixed: decode rows and prompt chunks in one step
        "num_steps": len(stats.trace),
        "num_prefill_steps": stats.steps("prefill"),
        "num_decode_steps": stats.steps("decode"),
        "num_mixed_steps": stats.steps("mixed"),
        "peak_kv_blocks": stats.peak_kv_blocks,
        "prefix_hit_rate": stats.prefix_hit_rate,
    }


def roofline(stats: EngineStats, weight_bytes: int, kv_bytes_per_token: int, bandwidth: float | None) -> dict:
    seconds = stats.seconds("decode")
    if not bandwidth or not seconds:
        return {"decode_bandwidth_gb_s": None, "copy_bandwidth_gb_s": None, "roofline": None}
    achieved = decode_bytes(stats, weight_bytes, kv_bytes_per_token) / seconds
    return {
        "decode_bandwidth_gb_s": achieved / 1e9,
        "copy_bandwidth_gb_s": bandwidth / 1e9,
        "roofline": achieved / bandwidth,
    }
