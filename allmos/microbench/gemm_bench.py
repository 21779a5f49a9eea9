"""The multi-row tensor-core GEMMs (allmos.linear.kernels.gemm) against the path they replace, at
decode batch sizes (needs a CUDA GPU).

    python -m allmos.microbench.gemm_bench --out DIR [--rows 2,16,64,256] [--quick] [--pdl]

For each Qwen3-0.6B projection with its prologue (RMSNorm+qkv, o, RMSNorm+gate_up, SiLU+down) and each
row count it times the torch path (the compiled element-wise op, as `compile=true` builds it, then cuBLAS
through F.linear), the Triton kernel with its default config, and, unless --quick, every config of a
sweep over tiles, K chunks, warps, pipeline stages and split-K counts, reporting the fastest (with --pdl every
Triton call launches under programmatic dependent launch). Times are
CUDA-graph replays of back-to-back calls rotating over enough weight copies that each call reads its
weight from HBM, as the 28 layers of a decode step do. The sweep's kernels are compiled first in a pool
of processes (one per config, into Triton's shared cache), so that the sweep is not bound by compiling.
Writes DIR/gemm_bench.json.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import multiprocessing
import os

import torch
import torch.nn.functional as F
import triton
from triton.runtime.errors import OutOfResources

from allmos.layers import ops
from allmos.linear.kernels.gemm import (
    add_rms_norm_rows_linear,
    new_split_counters,
    rows_linear,
    silu_mul_rows_linear,
)
from allmos.linear.kernels.gemm_config import NUM_SMS_H100, SHARED_MEMORY_BYTES, shared_memory_bytes
from allmos.microbench.gpu_timing import environment, graph_ms, num_sets

DTYPE = torch.bfloat16
EPS = 1e-6
PROJECTIONS = {  # name: (prologue, out_features, in_features); the plain ones to compare fused and not
    "rmsnorm+qkv": ("add_rms_norm", 4096, 1024),
    "o": ("plain", 1024, 2048),
    "rmsnorm+gate_up": ("add_rms_norm", 6144, 1024),
    "silu+down": ("silu_mul", 1024, 3072),
    "qkv": ("plain", 4096, 1024),
    "gate_up": ("plain", 6144, 1024),
    "down": ("plain", 1024, 3072),
}
ROWS = (2, 8, 16, 32, 64, 128, 256)
SPLITS = (1, 2, 4, 8)


def tile_configs() -> list[dict]:
    configs = []
    for block_m, block_n, block_k in itertools.product((16, 32, 64, 128), (32, 64, 128), (64, 128)):
        num_stages = 4 if block_k == 64 else 3
        config = {"block_m": block_m, "block_n": block_n, "block_k": block_k, "num_stages": num_stages}
        config["num_warps"] = 8 if block_m * block_n >= 128 * 64 else 4
        if shared_memory_bytes(config) <= SHARED_MEMORY_BYTES:
            configs.append(config)
    return configs


def sweep_configs(rows: int, n: int, k: int) -> list[dict]:
    """Tiles no taller than the rows need (and not below 16), each with the split-K counts that keep
    every slice at least one chunk long and the grid within four programs per SM."""
    tallest = max(16, triton.next_power_of_2(rows))
    configs = []
    for tile in tile_configs():
        if tile["block_m"] > tallest:
            continue
        tiles = triton.cdiv(rows, tile["block_m"]) * triton.cdiv(n, tile["block_n"])
        for split_k in SPLITS:
            if k >= split_k * tile["block_k"] and (split_k == 1 or tiles * split_k <= 4 * NUM_SMS_H100):
                configs.append(tile | {"split_k": split_k})
    return configs


class Projection:
    """One projection's inputs at a row count, its torch path and its Triton kernel."""

    def __init__(self, name: str, rows: int, compiled_ops: ops.Ops | None, sets: int | None = None):
        self.prologue, n, k = PROJECTIONS[name]
        self.name, self.rows, self.n, self.k = name, rows, n, k
        self.ops = compiled_ops
        gen = torch.Generator(device="cuda").manual_seed(rows)
        width = 2 * k if self.prologue == "silu_mul" else k
        self.x = torch.randn(rows, width, generator=gen, device="cuda").to(DTYPE)
        self.residual = torch.randn(rows, k, generator=gen, device="cuda").to(DTYPE)
        self.norm_weight = (1 + 0.1 * torch.randn(k, generator=gen, device="cuda")).to(DTYPE)
        self.counters = new_split_counters("cuda")
        sets = sets or num_sets(2 * n * k)
        self.weights = [(torch.randn(n, k, generator=gen, device="cuda") * k**-0.5).to(DTYPE) for _ in range(sets)]

    def moved_bytes(self) -> int:
        return 2 * (self.n * self.k + self.x.numel() + self.rows * self.n)

    def torch_path(self, w: torch.Tensor) -> torch.Tensor:
        if self.prologue == "add_rms_norm":
            return F.linear(self.ops.add_rms_norm(self.x, self.residual, self.norm_weight, EPS)[0], w)
        if self.prologue == "silu_mul":
            return F.linear(self.ops.silu_and_mul(self.x), w)
        return F.linear(self.x, w)

    def triton(self, w: torch.Tensor, config: dict | None = None, pdl: bool = False) -> torch.Tensor:
        options = {"counters": self.counters, "config": config, "pdl": pdl}
        if self.prologue == "add_rms_norm":
            return add_rms_norm_rows_linear(self.x, self.residual, self.norm_weight, EPS, w, **options)[0]
        if self.prologue == "silu_mul":
            return silu_mul_rows_linear(self.x, w, **options)
        return rows_linear(self.x, w, **options)

    def time_ms(self, fn) -> float:
        return graph_ms([lambda w=w: fn(w) for w in self.weights], self.moved_bytes())


def compile_configs(tasks: list[tuple[str, int, dict, bool]]) -> None:
    """Run each (projection, rows, config, pdl) once in the calling process: compiles its kernel variant
    (one that needs more shared memory than the GPU has is left out of the sweep later)."""
    for name, rows, config, pdl in tasks:
        projection = Projection(name, rows, None, sets=1)
        with contextlib.suppress(OutOfResources):
            projection.triton(projection.weights[0], config, pdl=pdl)
    torch.cuda.synchronize()


def precompile(tasks: list[tuple[str, int, dict, bool]], processes: int) -> None:
    """Compile every kernel variant the sweep launches, spread over processes by tile config (the
    variants of one tile config share most of their compile: same process, one cache entry each)."""
    groups: dict[str, list] = {}
    for task in tasks:
        groups.setdefault(json.dumps([PROJECTIONS[task[0]][0], task[2]]), []).append(task)
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        pool.map(compile_configs, list(groups.values()))


def bench(name: str, rows: int, compiled_ops: ops.Ops, sweep: bool, pdl: bool = False) -> dict:
    """One projection at one row count: the torch path, the default config and (with sweep) the fastest
    of sweep_configs; with pdl the Triton calls launch under PDL."""
    projection = Projection(name, rows, compiled_ops)
    expected = projection.torch_path(projection.weights[0])
    got = projection.triton(projection.weights[0], pdl=pdl)
    torch.testing.assert_close(got, expected, rtol=2e-2, atol=2e-2)
    row = {"projection": name, "rows": rows, "n": projection.n, "k": projection.k, "bytes": projection.moved_bytes()}
    row["pdl"] = pdl
    row["torch_ms"] = projection.time_ms(projection.torch_path)
    row["default_ms"] = projection.time_ms(lambda w: projection.triton(w, pdl=pdl))
    if sweep:
        timings = []
        for c in sweep_configs(rows, projection.n, projection.k):
            with contextlib.suppress(OutOfResources):  # more shared memory than the GPU has
                timings.append((projection.time_ms(lambda w, c=c: projection.triton(w, c, pdl=pdl)), c))
        timings.sort(key=lambda timing: timing[0])
        row["best_ms"], row["best_config"] = timings[0]
        row["top"] = [{"ms": ms, "config": c} for ms, c in timings[:5]]
        if pdl:
            return row
        # back-to-back launches with programmatic dependent launch: each starts while the last one ends
        row["best_pdl_ms"], row["best_pdl_config"] = min(
            ((projection.time_ms(lambda w, c=c: projection.triton(w, c, pdl=True)), c) for _, c in timings[:2]),
            key=lambda timing: timing[0],
        )
    return row


def print_rows(rows: list[dict]) -> None:
    print(
        f"{'projection':16s} {'rows':>4s} {'torch us':>9s} {'default us':>11s} {'best us':>8s} {'pdl us':>7s}"
        "  best config"
    )
    for r in rows:
        print(
            f"{r['projection']:16s} {r['rows']:4d} {r['torch_ms'] * 1e3:9.2f} {r['default_ms'] * 1e3:11.2f} "
            f"{r.get('best_ms', float('nan')) * 1e3:8.2f} {r.get('best_pdl_ms', float('nan')) * 1e3:7.2f}  "
            f"{r.get('best_config', '')} pdl: {r.get('best_pdl_config', '')}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for gemm_bench.json")
    parser.add_argument("--rows", default=",".join(map(str, ROWS)), help="comma-separated row counts")
    parser.add_argument("--projections", default=",".join(PROJECTIONS), help="comma-separated names")
    parser.add_argument("--quick", action="store_true", help="no config sweep")
    parser.add_argument("--pdl", action="store_true", help="time the Triton GEMMs under PDL")
    parser.add_argument("--processes", type=int, default=max(1, (os.cpu_count() or 2) - 2))
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("gemm_bench needs a CUDA GPU")
    row_counts = [int(r) for r in args.rows.split(",")]
    names = args.projections.split(",")
    unknown = set(names) - set(PROJECTIONS)
    if unknown:
        parser.error(f"unknown projections {sorted(unknown)}; choose from {list(PROJECTIONS)}")
    if not args.quick:
        tasks = [
            (name, rows, config, args.pdl)
            for name in names
            for rows in row_counts
            for config in sweep_configs(rows, *PROJECTIONS[name][1:])
        ]
        precompile(tasks, args.processes)
    compiled_ops = ops.Ops.build(compiled=True)
    os.makedirs(args.out, exist_ok=True)
    results = []
    for name in names:
        results += [bench(name, rows, compiled_ops, not args.quick, args.pdl) for rows in row_counts]
        print_rows(results[-len(row_counts) :])
        with open(os.path.join(args.out, "gemm_bench.json"), "w") as f:  # so far: a cut-short run keeps it
            json.dump({"environment": environment(), "rows": results}, f, indent=1)


if __name__ == "__main__":
    main()
