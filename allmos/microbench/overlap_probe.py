"""How much of a decode step two micro-batches on two streams could hide (needs a CUDA GPU).

    python -m allmos.microbench.overlap_probe --out DIR [--batch 64,128,256] [--context 1024] [--layers 8]

A decode step is a chain of short kernels whose time does not scale with the bandwidth (the projections at a
few to a few hundred rows take 2.5-4x their weights' time at the copy bandwidth: rows_chain, step_timeline)
around one that does (the attention reads the whole K/V cache). Split the batch in two halves and run each
half's layers on its own stream, and one half's attention could run while the other half's projections wait on
their latencies. This probe measures that on a layer of Qwen3-0.6B's shape (norm+qkv, paged decode attention over
--context tokens a sequence, o, norm+gate_up, SiLU+down; no rope or K/V store), each layer with its own weights
and pages, in CUDA graphs, as microseconds per layer:

  * serial: the whole batch on one stream (the engine today);
  * halves, one stream: both halves one after the other (the cost of splitting alone: weights read twice);
  * two streams: each half on its own stream, free-running;
  * two streams, alternating attention: a half's attention waits for the other half's attention of the
    same layer (the attentions never overlap each other, only the other half's projections).

The projections run as the engine runs them at that row count (linear=triton: its fused GEMMs up to
MAX_GEMM_ROWS rows, the compiled norm or SiLU and cuBLAS above). Each stream has its own split-K and attention
counters. Also reported: attention alone and projections alone at both sizes, and the layer's K/V and weights at
the copy bandwidth.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.nn.functional as F

from allmos.attention.kernels.decode import decode_counters, paged_decode_attention
from allmos.layers import ops
from allmos.linear.kernels.gemm import (
    MAX_GEMM_ROWS,
    add_rms_norm_rows_linear,
    new_split_counters,
    rows_linear,
    silu_mul_rows_linear,
)
from allmos.microbench.gpu_timing import environment, replay_ms
from allmos.microbench.kernel_bench import bench_copy

DTYPE = torch.bfloat16
EPS = 1e-6
HIDDEN, Q_WIDTH, NUM_HEADS, NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE = 1024, 2048, 16, 8, 128, 256
SHAPES = {"qkv": (4096, HIDDEN), "o": (HIDDEN, Q_WIDTH), "gate_up": (6144, HIDDEN), "down": (HIDDEN, 3072)}
TABLE_WIDTH = 16  # block-table columns: 4096 tokens, as the engine's max_model_len


class Lane:
    """A half (or the whole) of the batch: its rows of the block table and lengths, and its own counters."""

    def __init__(self, table: torch.Tensor, lens: torch.Tensor):
        self.table, self.lens, self.rows = table, lens, table.shape[0]
        self.attention_counters = decode_counters(self.rows, NUM_KV_HEADS, "cuda")
        self.gemm_counters = new_split_counters("cuda")
        self.x = torch.randn(self.rows, HIDDEN, device="cuda").to(DTYPE)
        self.residual = torch.randn(self.rows, HIDDEN, device="cuda").to(DTYPE)


def make_layers(layers: int, batch: int, context: int) -> list[dict]:
    pages = -(-context // BLOCK_SIZE)

    def weight(n, k):
        return (torch.randn(n, k, device="cuda") * k**-0.5).to(DTYPE)

    def norm():
        return (1 + 0.1 * torch.randn(HIDDEN, device="cuda")).to(DTYPE)

    cache_shape = (batch * pages, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM)
    return [
        {
            **{name: weight(*shape) for name, shape in SHAPES.items()},
            "norm1": norm(),
            "norm2": norm(),
            "k_cache": torch.randn(cache_shape, device="cuda").to(DTYPE),
            "v_cache": torch.randn(cache_shape, device="cuda").to(DTYPE),
        }
        for _ in range(layers)
    ]


def lanes(batch: int, context: int) -> dict[str, Lane]:
    pages = -(-context // BLOCK_SIZE)
    table = torch.zeros(batch, TABLE_WIDTH, dtype=torch.int32, device="cuda")
    table[:, :pages] = torch.arange(batch * pages, dtype=torch.int32, device="cuda").view(batch, pages)
    lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    half = batch // 2
    return {
        "whole": Lane(table, lens),
        "first": Lane(table[:half].contiguous(), lens[:half].contiguous()),
        "second": Lane(table[half:].contiguous(), lens[half:].contiguous()),
    }


class Layer:
    """One decoder layer's kernels for a lane, split where the attention is."""

    def __init__(self, compiled: ops.Ops):
        self.ops = compiled

    def qkv(self, lane: Lane, x, residual, w):
        if lane.rows <= MAX_GEMM_ROWS:
            return add_rms_norm_rows_linear(x, residual, w["norm1"], EPS, w["qkv"], counters=lane.gemm_counters)
        h, residual = self.ops.add_rms_norm(x, residual, w["norm1"], EPS)
        return F.linear(h, w["qkv"]), residual

    def attention(self, lane: Lane, qkv, w):
        q = qkv[:, :Q_WIDTH].view(lane.rows, NUM_HEADS, HEAD_DIM)
        out = paged_decode_attention(
            q, w["k_cache"], w["v_cache"], lane.table, lane.lens, HEAD_DIM**-0.5, counters=lane.attention_counters
        )
        return out.view(lane.rows, Q_WIDTH)

    def mlp(self, lane: Lane, attn, residual, w):
        """o, norm+gate_up, SiLU+down: the layer's output and residual."""
        if lane.rows <= MAX_GEMM_ROWS:
            c = lane.gemm_counters
            o = rows_linear(attn, w["o"], counters=c)
            gate_up, residual = add_rms_norm_rows_linear(o, residual, w["norm2"], EPS, w["gate_up"], counters=c)
            return silu_mul_rows_linear(gate_up, w["down"], counters=c), residual
        h, residual = self.ops.add_rms_norm(F.linear(attn, w["o"]), residual, w["norm2"], EPS)
        return F.linear(self.ops.silu_and_mul(F.linear(h, w["gate_up"])), w["down"]), residual

    def step(self, lane: Lane, state: tuple, w: dict, wait=None, signal=None) -> tuple:
        """One layer on (x, residual): wait() runs before its attention and signal() after it."""
        qkv, residual = self.qkv(lane, *state, w)
        if wait:
            wait()
        attn = self.attention(lane, qkv, w)
        if signal:
            signal()
        return self.mlp(lane, attn, residual, w)

    def chain(self, lane: Lane, layers: list[dict]):
        state = (lane.x, lane.residual)
        for w in layers:
            state = self.step(lane, state, w)
        return state[0]


def two_streams(layer: Layer, lanes_: dict, layers: list[dict], alternate: bool):
    """The two halves' layers on the current stream and a second one (forked and joined within a capture),
    enqueued layer by layer so that every event is recorded before a stream waits on it. With `alternate`,
    the first half's attention of layer i waits for the second half's of layer i - 1, and the second half's
    for the first half's of layer i."""
    side = torch.cuda.Stream()
    first_done = [torch.cuda.Event() for _ in layers]
    second_done = [torch.cuda.Event() for _ in layers]

    def run():
        main = torch.cuda.current_stream()
        side.wait_stream(main)
        first, second = lanes_["first"], lanes_["second"]
        state_1, state_2 = (first.x, first.residual), (second.x, second.residual)
        for i, w in enumerate(layers):
            wait_1 = (lambda i=i: main.wait_event(second_done[i - 1])) if alternate and i else None
            signal_1 = (lambda i=i: first_done[i].record(main)) if alternate else None
            state_1 = layer.step(first, state_1, w, wait_1, signal_1)
            with torch.cuda.stream(side):
                wait_2 = (lambda i=i: side.wait_event(first_done[i])) if alternate else None
                signal_2 = (lambda i=i: second_done[i].record(side)) if alternate else None
                state_2 = layer.step(second, state_2, w, wait_2, signal_2)
        main.wait_stream(side)

    return run


def us_per_layer(fn, layers: int, replays: int = 10) -> float:
    times = sorted(ms * 1e3 / layers for ms in replay_ms(fn, fn, replays))
    return times[len(times) // 2]


def parts(layer: Layer, lane: Lane, layers: list[dict]) -> dict:
    """The lane's attention alone and projections alone (norms and SiLU included), us per layer."""
    qkv = torch.randn(lane.rows, 4096, device="cuda").to(DTYPE)
    attn = torch.randn(lane.rows, Q_WIDTH, device="cuda").to(DTYPE)

    def attention_only():
        for w in layers:
            layer.attention(lane, qkv, w)

    def projections_only():
        for w in layers:
            layer.qkv(lane, lane.x, lane.residual, w)
            layer.mlp(lane, attn, lane.residual, w)

    return {
        "attention_us": us_per_layer(attention_only, len(layers)),
        "projections_us": us_per_layer(projections_only, len(layers)),
    }


def bench_batch(batch: int, context: int, num_layers: int, compiled: ops.Ops, copy_gbps: float) -> dict:
    layers, lanes_ = make_layers(num_layers, batch, context), lanes(batch, context)
    layer = Layer(compiled)
    kv_bytes = 2 * 2 * batch * context * NUM_KV_HEADS * HEAD_DIM
    weight_bytes = sum(2 * n * k for n, k in SHAPES.values())
    row = {"batch": batch, "context": context, "floor_us": (kv_bytes + weight_bytes) / (copy_gbps * 1e3)}
    row["serial_us"] = us_per_layer(lambda: layer.chain(lanes_["whole"], layers), num_layers)
    halves = lambda: [layer.chain(lanes_[h], layers) for h in ("first", "second")]  # noqa: E731
    row["halves_one_stream_us"] = us_per_layer(halves, num_layers)
    row["two_streams_us"] = us_per_layer(two_streams(layer, lanes_, layers, alternate=False), num_layers)
    row["two_streams_alternating_us"] = us_per_layer(two_streams(layer, lanes_, layers, alternate=True), num_layers)
    row["whole"] = parts(layer, lanes_["whole"], layers)
    row["half"] = parts(layer, lanes_["first"], layers)
    check_halves_match_whole(layer, lanes_, layers)
    print(
        f"batch {batch:4d} context {context}: us/layer floor {row['floor_us']:7.2f}  serial {row['serial_us']:7.2f}  "
        f"halves on one stream {row['halves_one_stream_us']:7.2f}  two streams {row['two_streams_us']:7.2f}  "
        f"alternating {row['two_streams_alternating_us']:7.2f}  | whole: {row['whole']}  half: {row['half']}",
        flush=True,
    )
    return row


def check_halves_match_whole(layer: Layer, lanes_: dict, layers: list[dict]) -> None:
    """One layer's attention of each half equals the whole batch's rows (the halves read the same pages)."""
    qkv = torch.randn(lanes_["whole"].rows, 4096, device="cuda").to(DTYPE)
    whole = layer.attention(lanes_["whole"], qkv, layers[0])
    half = lanes_["first"].rows
    first = layer.attention(lanes_["first"], qkv[:half].contiguous(), layers[0])
    second = layer.attention(lanes_["second"], qkv[half:].contiguous(), layers[0])
    torch.testing.assert_close(torch.cat([first, second]), whole, rtol=1e-2, atol=1e-2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for overlap_probe.json")
    parser.add_argument("--batch", default="64,128,256", help="comma-separated batch sizes (even)")
    parser.add_argument("--context", type=int, default=1024, help="cached tokens a sequence")
    parser.add_argument("--layers", type=int, default=8)
    args = parser.parse_args()
    batches = [int(b) for b in args.batch.split(",")]
    if any(b < 2 or b % 2 for b in batches):
        parser.error(f"--batch: every batch must be even and at least 2; got {batches}")
    if not torch.cuda.is_available():
        parser.error("overlap_probe needs a CUDA GPU")
    copy_gbps = bench_copy()["gbps"]
    compiled = ops.Ops.build(compiled=True)
    result = {"environment": environment(), "copy_gbps": copy_gbps, "layers": args.layers}
    result["rows"] = [bench_batch(b, args.context, args.layers, compiled, copy_gbps) for b in batches]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "overlap_probe.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
