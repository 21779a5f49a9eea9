"""Bandwidth of the model's linear layers at decode row counts (needs a CUDA GPU).

    python -m allmos.bench.linear_bench --out DIR [--quick]

For each Qwen3-0.6B projection (qkv, o, gate_up, down, LM head) and each row count, times cuBLAS
(`F.linear`) and the Triton skinny kernel (rows <= its MAX_ROWS; best of a small config sweep, and its
default config) as CUDA-graph replays of back-to-back calls that rotate over enough weight copies that each
call reads its weight from HBM, as the 28 layers of a decode step do. Bandwidth counts weight + x + y
bytes. Writes DIR/linear_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.nn.functional as F

from allmos.bench.kernel_bench import bench_copy, environment, gbps, graph_ms, num_sets
from allmos.layers.triton_skinny_linear import MAX_ROWS, skinny_linear

DTYPE = torch.bfloat16
SHAPES = {  # name: (out_features, in_features)
    "qkv": (4096, 1024),
    "o": (1024, 2048),
    "gate_up": (6144, 1024),
    "down": (1024, 3072),
    "lm_head": (151936, 1024),
}
ROWS = (1, 2, 4, 8, 16, 64, 256)
SWEEP_CONFIGS = [{"block_n": n, "block_k": k, "num_warps": 4} for n in (4, 8, 16) for k in (256, 512)] + [
    {"block_n": n, "block_k": 512, "num_warps": 8} for n in (16, 32)
]


def moved_bytes(rows: int, n: int, k: int) -> int:
    return 2 * (n * k + rows * k + rows * n)


def timed(fn, x: torch.Tensor, weights: list[torch.Tensor], num_bytes: int) -> float:
    return graph_ms([lambda w=w: fn(x, w) for w in weights], num_bytes)


def bench_shape(name: str, rows: int, sweep: bool) -> dict:
    n, k = SHAPES[name]
    weights = [torch.randn(n, k, dtype=DTYPE, device="cuda") for _ in range(num_sets(2 * n * k))]
    x = torch.randn(rows, k, dtype=DTYPE, device="cuda")
    num_bytes = moved_bytes(rows, n, k)
    row = {"shape": name, "n": n, "k": k, "rows": rows, "cublas_ms": timed(F.linear, x, weights, num_bytes)}
    if rows <= MAX_ROWS:
        torch.testing.assert_close(skinny_linear(x, weights[0]), F.linear(x, weights[0]), rtol=2e-2, atol=2e-2)
        row["skinny_default_ms"] = timed(skinny_linear, x, weights, num_bytes)
        if sweep:
            best = min(
                (timed(lambda a, b, c=c: skinny_linear(a, b, **c), x, weights, num_bytes), c) for c in SWEEP_CONFIGS
            )
            row["skinny_best_ms"], row["skinny_best_config"] = best[0], best[1]
    for key in [key for key in row if key.endswith("_ms")]:
        row[key.replace("_ms", "_gbps")] = gbps(num_bytes, row[key])
    return row


def print_rows(rows: list[dict]) -> None:
    print(f"{'shape':8s} {'rows':>4s} {'cuBLAS GB/s':>12s} {'skinny GB/s':>12s} {'best GB/s':>10s}  best config")
    for r in rows:
        print(
            f"{r['shape']:8s} {r['rows']:4d} {r['cublas_gbps']:12.0f} {r.get('skinny_default_gbps', 0):12.0f} "
            f"{r.get('skinny_best_gbps', 0):10.0f}  {r.get('skinny_best_config', '')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for linear_bench.json")
    parser.add_argument("--quick", action="store_true", help="no config sweep")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("linear_bench needs a CUDA GPU")
    copy = bench_copy()
    print(f"device-to-device copy: {copy['gbps']:.0f} GB/s")
    rows = [bench_shape(name, r, not args.quick) for name in SHAPES for r in ROWS]
    print_rows(rows)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "linear_bench.json"), "w") as f:
        json.dump({"environment": environment(), "copy": copy, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
