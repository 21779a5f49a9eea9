"""Timing helpers shared by the GPU benchmarks: median GPU time of a call (eager or as CUDA-graph
replays), the host's launch cost, input-set rotation past the L2, GB/s, and the device's description."""

from __future__ import annotations

import statistics
import time

import torch
import triton
from triton.testing import do_bench

ROTATION_BYTES = 256 << 20  # input bytes cycled through between reuses: several times the L2
GRAPH_BYTES = 1 << 30  # bytes moved per graph replay, so one replay lasts well above timer resolution
MAX_SETS = 128


def median_ms(fn, rep: int = 100) -> float:
    result = do_bench(fn, warmup=10, rep=rep, quantiles=[0.5])
    return float(result[0] if isinstance(result, (list, tuple)) else result)


def graph_ms(calls: list, bytes_per_call: int, replays: int = 10) -> float:
    """Median GPU time per call over replays of a CUDA graph that runs `calls` back to back."""
    repeats = max(1, triton.cdiv(GRAPH_BYTES, bytes_per_call * len(calls)))

    def warm_up():
        for call in calls:
            call()

    def body():
        for _ in range(repeats):
            warm_up()

    return statistics.median(ms / (repeats * len(calls)) for ms in replay_ms(warm_up, body, replays))


def replay_ms(warm_up, body, replays: int) -> list[float]:
    """GPU milliseconds of each of `replays` replays of a CUDA graph capturing body(); warm_up() runs once
    first, outside the capture (Triton compiles there)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        warm_up()
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        body()
    times = []
    for _ in range(replays):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return times


def host_us(fn, calls: int = 200) -> float:
    """Mean CPU time to enqueue fn (the launch overhead eager mode pays per call)."""
    fn()
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    elapsed = time.perf_counter() - start
    torch.cuda.synchronize()
    return elapsed / calls * 1e6


def num_sets(bytes_per_set: int) -> int:
    return max(1, min(MAX_SETS, triton.cdiv(ROTATION_BYTES, bytes_per_set)))


def gbps(num_bytes: int, ms: float) -> float:
    return num_bytes / (ms * 1e-3) / 1e9


def add_gbps(row: dict, num_bytes: int) -> dict:
    for key in [k for k in row if k.endswith("_ms")]:
        row[key.replace("_ms", "_gbps")] = gbps(num_bytes, row[key])
    return row


def environment() -> dict:
    props = torch.cuda.get_device_properties(0)
    return {
        "device": props.name,
        "num_sms": props.multi_processor_count,
        "torch": torch.__version__,
        "triton": triton.__version__,
        "cuda": torch.version.cuda,
    }
