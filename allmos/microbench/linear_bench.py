"""Bandwidth of the model's linear layers at decode row counts (needs a CUDA GPU).

    python -m allmos.microbench.linear_bench --out DIR [--quick]

For each Qwen3-0.6B projection (qkv, o, gate_up, down, LM head) and each row count, times cuBLAS
(`F.linear`) and the Triton skinny kernel (rows <= its MAX_ROWS; best of a small config sweep, and its
default config). At one row it also times the kernels with fused prologues against the torch path they
replace: add_rms_norm_linear (before qkv, gate_up and the LM head) against ops.add_rms_norm + F.linear,
silu_mul_linear (down) against ops.silu_and_mul + F.linear, with the ops eager and torch.compiled (as
`compile=true` builds them). At one row the default configs are also timed launched with programmatic
dependent launch (`pdl`). All are timed as CUDA-graph replays of back-to-back calls that rotate over
enough weight copies that each call reads its weight from HBM, as the 28 layers of a decode step do.
Bandwidth counts weight + input + output bytes. Writes DIR/linear_bench.json.
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.nn.functional as F

from allmos.layers import ops
from allmos.linear.kernels.gemv import add_rms_norm_linear, silu_mul_linear, skinny_linear
from allmos.linear.kernels.gemv_checks import MAX_ROWS
from allmos.linear.kernels.gemv_config import accumulator_fits
from allmos.microbench.gpu_timing import environment, gbps, graph_ms, num_sets
from allmos.microbench.kernel_bench import bench_copy

DTYPE = torch.bfloat16
SHAPES = {  # name: (out_features, in_features)
    "qkv": (4096, 1024),
    "o": (1024, 2048),
    "gate_up": (6144, 1024),
    "down": (1024, 3072),
    "lm_head": (151936, 1024),
}
ROWS = (1, 2, 4, 8, 16, 64, 256)
# Configs whose accumulator tile exceeds the register budget at a row count are left out there. block_k
# 2048 holds o's whole rows in one chunk (all of a program's weight loads issued at once).
SWEEP_CONFIGS = (
    [{"block_n": n, "block_k": k, "num_warps": 4} for n in (2, 4, 8, 16) for k in (256, 512, 1024)]
    + [{"block_n": 2, "block_k": 2048, "num_warps": 4}, {"block_n": 4, "block_k": 2048, "num_warps": 8}]
    + [{"block_n": n, "block_k": 512, "num_warps": 8} for n in (16, 32)]
)
FUSED = {  # fused kernel: (projection, prologue)
    "add_rms_norm+qkv": ("qkv", "add_rms_norm"),
    "add_rms_norm+gate_up": ("gate_up", "add_rms_norm"),
    "add_rms_norm+lm_head": ("lm_head", "add_rms_norm"),
    "silu_mul+down": ("down", "silu_mul"),
}
EPS = 1e-6


def moved_bytes(rows: int, n: int, k: int) -> int:
    return 2 * (n * k + rows * k + rows * n)


def timed(fn, x: torch.Tensor, weights: list[torch.Tensor], num_bytes: int) -> float:
    return graph_ms([lambda w=w: fn(x, w) for w in weights], num_bytes)


def fitting_configs(rows: int) -> list[dict]:
    return [c for c in SWEEP_CONFIGS if accumulator_fits(rows, **c)]


def best_config(fn, x: torch.Tensor, weights: list[torch.Tensor], num_bytes: int, rows: int) -> tuple[float, dict]:
    """(ms, config) of the fastest sweep config of fn(x, w, **config)."""
    return min(
        ((timed(lambda a, b, c=c: fn(a, b, **c), x, weights, num_bytes), c) for c in fitting_configs(rows)),
        key=lambda timing: timing[0],
    )


def bench_shape(name: str, rows: int, sweep: bool) -> dict:
    n, k = SHAPES[name]
    weights = [torch.randn(n, k, dtype=DTYPE, device="cuda") for _ in range(num_sets(2 * n * k))]
    x = torch.randn(rows, k, dtype=DTYPE, device="cuda")
    num_bytes = moved_bytes(rows, n, k)
    row = {"shape": name, "n": n, "k": k, "rows": rows, "cublas_ms": timed(F.linear, x, weights, num_bytes)}
    if rows <= MAX_ROWS:
        torch.testing.assert_close(skinny_linear(x, weights[0]), F.linear(x, weights[0]), rtol=2e-2, atol=2e-2)
        row["skinny_default_ms"] = timed(skinny_linear, x, weights, num_bytes)
        if rows == 1:
            row["skinny_pdl_ms"] = timed(lambda a, b: skinny_linear(a, b, pdl=True), x, weights, num_bytes)
        if sweep:
            row["skinny_best_ms"], row["skinny_best_config"] = best_config(skinny_linear, x, weights, num_bytes, rows)
    return with_gbps(row, num_bytes)


def with_gbps(row: dict, num_bytes: int) -> dict:
    for key in [key for key in row if key.endswith("_ms")]:
        row[key.replace("_ms", "_gbps")] = gbps(num_bytes, row[key])
    return row


def fused_pair(prologue: str, k: int):
    """(fused(x, w, **config), torch_path(x, w, ops), x, extra bytes) at one row: x is the projection's
    input as the model has it (x with its residual and norm weight bound, or the gate_up output)."""
    if prologue == "add_rms_norm":
        residual = torch.randn(1, k, dtype=DTYPE, device="cuda")
        norm_weight = (1 + 0.1 * torch.randn(k, device="cuda")).to(DTYPE)

        def fused(x, w, **config):
            return add_rms_norm_linear(x, residual, norm_weight, EPS, w, **config)[0]

        def torch_path(x, w, path_ops):
            return F.linear(path_ops.add_rms_norm(x, residual, norm_weight, EPS)[0], w)

        return fused, torch_path, torch.randn(1, k, dtype=DTYPE, device="cuda"), 2 * 3 * k  # residual, norm w, new r

    def torch_silu_path(x, w, path_ops):
        return F.linear(path_ops.silu_and_mul(x), w)

    return silu_mul_linear, torch_silu_path, torch.randn(1, 2 * k, dtype=DTYPE, device="cuda"), 2 * k  # up half


def bench_fused(name: str, sweep: bool, compiled_ops: ops.Ops) -> dict:
    projection, prologue = FUSED[name]
    n, k = SHAPES[projection]
    weights = [torch.randn(n, k, dtype=DTYPE, device="cuda") * k**-0.5 for _ in range(num_sets(2 * n * k))]
    fused, torch_path, x, extra_bytes = fused_pair(prologue, k)
    num_bytes = moved_bytes(1, n, k) + extra_bytes
    eager_ops = ops.Ops()
    torch.testing.assert_close(fused(x, weights[0]), torch_path(x, weights[0], eager_ops), rtol=2e-2, atol=2e-2)
    row = {
        "fused": name,
        "n": n,
        "k": k,
        "torch_eager_ms": timed(lambda a, b: torch_path(a, b, eager_ops), x, weights, num_bytes),
        "torch_compiled_ms": timed(lambda a, b: torch_path(a, b, compiled_ops), x, weights, num_bytes),
        "fused_default_ms": timed(fused, x, weights, num_bytes),
        "fused_pdl_ms": timed(lambda a, b: fused(a, b, pdl=True), x, weights, num_bytes),
    }
    if sweep:
        row["fused_best_ms"], row["fused_best_config"] = best_config(fused, x, weights, num_bytes, 1)
    return with_gbps(row, num_bytes)


def print_rows(rows: list[dict]) -> None:
    header = f"{'shape':8s} {'rows':>4s} {'cuBLAS GB/s':>12s} {'skinny GB/s':>12s} {'pdl GB/s':>9s} {'best GB/s':>10s}"
    print(header + "  best config")
    for r in rows:
        print(
            f"{r['shape']:8s} {r['rows']:4d} {r['cublas_gbps']:12.0f} {r.get('skinny_default_gbps', 0):12.0f} "
            f"{r.get('skinny_pdl_gbps', 0):9.0f} {r.get('skinny_best_gbps', 0):10.0f}  "
            f"{r.get('skinny_best_config', '')}"
        )


def print_fused(rows: list[dict]) -> None:
    header = (
        f"{'fused (1 row)':22s} {'eager us':>9s} {'compiled us':>12s} {'fused us':>9s} {'pdl us':>7s} {'best us':>8s}"
    )
    print(header + "  best config")
    for r in rows:
        print(
            f"{r['fused']:22s} {r['torch_eager_ms'] * 1e3:9.2f} {r['torch_compiled_ms'] * 1e3:12.2f} "
            f"{r['fused_default_ms'] * 1e3:9.2f} {r['fused_pdl_ms'] * 1e3:7.2f} "
            f"{r.get('fused_best_ms', 0) * 1e3:8.2f}  "
            f"{r.get('fused_best_config', '')}"
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
    compiled_ops = ops.Ops.build(compiled=True)
    fused = [bench_fused(name, not args.quick, compiled_ops) for name in FUSED]
    print_fused(fused)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "linear_bench.json"), "w") as f:
        json.dump({"environment": environment(), "copy": copy, "rows": rows, "fused": fused}, f, indent=1)


if __name__ == "__main__":
    main()
