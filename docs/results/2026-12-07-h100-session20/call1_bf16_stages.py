"""bf16 decode: the default launch against 64-token tiles at 5 stages (two K/V buffers a program)."""

import torch

from allmos.microbench.gpu_timing import gbps, graph_ms
from allmos.microbench.kernel_bench import bench_copy
from allmos.microbench.kernel_bench_fp8 import decode_calls

copy = bench_copy()
print("copy", copy)
for context in (2048,):
    for batch in (1, 16, 64, 256):
        line = f"bf16 ctx {context} batch {batch}:"
        for label, launch in (
            ("default", {}),
            ("bn64 s5", {"block_n": 64, "num_stages": 5}),
            ("bn128 s5", {"block_n": 128, "num_stages": 5}),
        ):
            calls, n = decode_calls(batch, context, "auto", **launch)
            ms = graph_ms(calls, n)
            line += f"  {label} {ms * 1e3:.1f} us ({gbps(n, ms) / copy['gbps']:.1%})"
            del calls
            torch.cuda.empty_cache()
        print(line, flush=True)
