"""A decode layer's four projections at a few to a few hundred rows, for every layer, as one chain (needs a
CUDA GPU).

    python -m allmos.microbench.rows_chain --out DIR [--rows 16,32,64,128,256] [--layers 28] [--configs FILE]
        [--variants torch,deferred,plain,pdl]

Each layer runs norm+qkv, o (on qkv's first 2048 columns, standing in for attention's output), norm+gate_up
and SiLU+down, each with its own weights, so that every weight comes from HBM as in a decode step. The
layers are captured in one CUDA graph and timed as replays, in the variants --variants names (by default torch,
plain and pdl):

  * torch: the compiled norm or SiLU, then cuBLAS (what linear=triton runs from 33 rows on);
  * deferred: cuBLAS with the input norms deferred (allmos.microbench.deferred_norm): no add+RMSNorm kernel, the
    norm weights folded into qkv's and gate_up's, o and down adding into the residual stream in place, the
    compiled SiLU scaling its rows by 1/rms; o reads a fixed stand-in for attention's output (in a layer the rope
    kernel would apply qkv's row scale). Two kernels a layer fewer than torch, at another rounding;
  * plain: linear=triton's split-K GEMMs with the element-wise op fused into their input load;
  * pdl: the same launched under programmatic dependent launch, waiting for the previous kernel first.

The GEMMs run at their default configs and, with --configs (a gemm_bench.json), at the fastest config that
sweep found for each projection and row count. The figure is microseconds per layer against the weights'
bytes at the copy bandwidth. What a chain of short kernels loses between them (ramp-up, tails, the launch)
is what this measures, which a benchmark of one projection repeated shows only in part. With --layers 1 every
layer reads the same 31 MB, which stay in the L2: against the default 28 layers, that shows how much of the time
is the weights' read from HBM (on an H100, 2026-12-07: next to none; docs/results/2026-12-07-h100-session21).
"""

from __future__ import annotations

import argparse
import json
import os

import torch
import torch.nn.functional as F

from allmos.layers import ops
from allmos.linear.kernels.gemm import (
    add_rms_norm_rows_linear,
    new_split_counters,
    rows_linear,
    silu_mul_rows_linear,
)
from allmos.microbench.deferred_norm import deferred_layer, fold_norms, silu_mul_scaled
from allmos.microbench.gpu_timing import environment, replay_ms
from allmos.microbench.kernel_bench import bench_copy

DTYPE = torch.bfloat16
EPS = 1e-6
HIDDEN, Q_WIDTH = 1024, 2048
PROJECTIONS = {  # name in the chain: (name in gemm_bench, out_features, in_features)
    "qkv": ("rmsnorm+qkv", 4096, HIDDEN),
    "o": ("o", HIDDEN, Q_WIDTH),
    "gate_up": ("rmsnorm+gate_up", 6144, HIDDEN),
    "down": ("silu+down", HIDDEN, 3072),
}
VARIANTS = {"plain": {"pdl": False}, "pdl": {"pdl": True}}
ALL_VARIANTS = ("torch", "deferred", *VARIANTS)


def layer_weights(layers: int, device="cuda", dtype=DTYPE) -> list[dict]:
    def weight(n, k):
        return (torch.randn(n, k, device=device) * k**-0.5).to(dtype)

    def norm():
        return (1 + 0.1 * torch.randn(HIDDEN, device=device)).to(dtype)

    shapes = {name: (n, k) for name, (_, n, k) in PROJECTIONS.items()}
    return [
        {**{name: weight(*shape) for name, shape in shapes.items()}, "norm1": norm(), "norm2": norm()}
        for _ in range(layers)
    ]


def torch_layer(x, residual, w: dict, compiled: ops.Ops):
    h, residual = compiled.add_rms_norm(x, residual, w["norm1"], EPS)
    o = F.linear(F.linear(h, w["qkv"])[:, :Q_WIDTH], w["o"])
    h, residual = compiled.add_rms_norm(o, residual, w["norm2"], EPS)
    return F.linear(compiled.silu_and_mul(F.linear(h, w["gate_up"])), w["down"]), residual


def deferred_chain_layer(stand_in: torch.Tensor, silu_mul):
    """rows_chain's `deferred` layer (weights from fold_norms), as chain_us_per_layer calls a layer."""
    return lambda h, residual, w: (deferred_layer(h, w, EPS, Q_WIDTH, silu_mul, stand_in), residual)


def triton_layer(x, residual, w: dict, configs: dict, options: dict):
    qkv, residual = add_rms_norm_rows_linear(x, residual, w["norm1"], EPS, w["qkv"], config=configs["qkv"], **options)
    o = rows_linear(qkv[:, :Q_WIDTH], w["o"], config=configs["o"], **options)
    gate_up, residual = add_rms_norm_rows_linear(
        o, residual, w["norm2"], EPS, w["gate_up"], config=configs["gate_up"], **options
    )
    return silu_mul_rows_linear(gate_up, w["down"], config=configs["down"], **options), residual


def chain_us_per_layer(layer, weights: list[dict], rows: int, replays: int = 20) -> float:
    """Median GPU microseconds per layer of the chain `layer(x, residual, w)` over every layer's weights."""
    gen = torch.Generator(device="cuda").manual_seed(rows)
    x = torch.randn(rows, HIDDEN, generator=gen, device="cuda").to(DTYPE)
    residual = torch.randn(rows, HIDDEN, generator=gen, device="cuda").to(DTYPE)

    def chain():
        h, r = x, residual
        for w in weights:
            h, r = layer(h, r, w)
        return h

    times = sorted(ms * 1e3 / len(weights) for ms in replay_ms(chain, chain, replays))
    return times[len(times) // 2]


def swept_configs(path: str | None, rows: int) -> dict | None:
    """The fastest config gemm_bench found for each projection at `rows` (None without a file or a row)."""
    if path is None:
        return None
    with open(path) as f:
        found = {(r["projection"], r["rows"]): r.get("best_config") for r in json.load(f)["rows"]}
    configs = {name: found.get((bench_name, rows)) for name, (bench_name, _, _) in PROJECTIONS.items()}
    return configs if all(configs.values()) else None


def check_layer(weights: list[dict], rows: int, compiled: ops.Ops, configs: dict, options: dict) -> None:
    """One layer of each Triton variant agrees with the torch path (bf16 tolerances)."""
    x = torch.randn(rows, HIDDEN, device="cuda").to(DTYPE)
    residual = torch.randn(rows, HIDDEN, device="cuda").to(DTYPE)
    expected = torch_layer(x, residual, weights[0], compiled)
    got = triton_layer(x, residual, weights[0], configs, options)
    for want, have in zip(expected, got, strict=True):
        torch.testing.assert_close(have, want, rtol=3e-2, atol=3e-2)


def check_deferred(weights: dict, rows: int, compiled: ops.Ops, silu_mul) -> None:
    """One deferred layer, attention's stand-in being qkv's scaled q columns, agrees with the torch layer's
    residual stream after it (bf16 tolerances: the folded weights round differently)."""
    x = torch.randn(rows, HIDDEN, device="cuda").to(DTYPE)
    residual = torch.randn(rows, HIDDEN, device="cuda").to(DTYPE)
    out, new_residual = torch_layer(x, residual, weights, compiled)
    got = deferred_layer(x + residual, fold_norms(weights), EPS, Q_WIDTH, silu_mul)
    torch.testing.assert_close(got, out + new_residual, rtol=3e-2, atol=5e-2)


def bench_rows(
    weights: list[dict],
    rows: int,
    compiled: ops.Ops,
    configs_file: str | None,
    floor_us: float,
    variants: tuple = ("torch", *VARIANTS),
    deferred: tuple | None = None,
):
    """One row count's figures: each named variant (`deferred`: fold_norms of each layer's weights and the
    compiled silu_mul_scaled, for the variant of that name)."""
    result = {"rows": rows}
    if "torch" in variants:
        result["torch_us"] = chain_us_per_layer(lambda x, r, w: torch_layer(x, r, w, compiled), weights, rows)
    if "deferred" in variants:
        folded, silu_mul = deferred
        check_deferred(weights[0], rows, compiled, silu_mul)
        stand_in = torch.randn(rows, Q_WIDTH, device="cuda").to(DTYPE)
        result["deferred_us"] = chain_us_per_layer(deferred_chain_layer(stand_in, silu_mul), folded, rows)
    triton_variants = {name: options for name, options in VARIANTS.items() if name in variants}
    if triton_variants:
        _bench_triton(result, weights, rows, compiled, configs_file, triton_variants)
    cells = "  ".join(f"{key[:-3]} {value:6.2f}" for key, value in result.items() if key.endswith("_us"))
    print(f"rows {rows:4d}: us/layer (weights at copy {floor_us:.2f})  {cells}", flush=True)
    return result


def _bench_triton(result: dict, weights: list[dict], rows: int, compiled, configs_file, variants: dict) -> None:
    counters = new_split_counters("cuda")
    config_sets = {"default": dict.fromkeys(PROJECTIONS)}
    swept = swept_configs(configs_file, rows)
    if swept:
        config_sets["swept"] = swept
        result["swept_configs"] = swept
    for set_name, configs in config_sets.items():
        for variant, options in variants.items():
            options = {**options, "counters": counters}
            check_layer(weights, rows, compiled, configs, options)
            layer = lambda x, r, w, c=configs, o=options: triton_layer(x, r, w, c, o)  # noqa: E731
            result[f"{set_name}_{variant}_us"] = chain_us_per_layer(layer, weights, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for rows_chain.json")
    parser.add_argument("--rows", default="16,32,64,128,256", help="comma-separated row counts")
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--configs", help="a gemm_bench.json whose best configs to run as well")
    parser.add_argument("--variants", default="torch,plain,pdl", help=f"comma-separated, of {','.join(ALL_VARIANTS)}")
    args = parser.parse_args()
    variants = tuple(args.variants.split(","))
    if not set(variants) <= set(ALL_VARIANTS):
        parser.error(f"--variants: each of {', '.join(ALL_VARIANTS)}; got {args.variants}")
    if not torch.cuda.is_available():
        parser.error("rows_chain needs a CUDA GPU")
    weights = layer_weights(args.layers)
    copy_gbps = bench_copy()["gbps"]
    floor_us = sum(2 * n * k for _, n, k in PROJECTIONS.values()) / (copy_gbps * 1e9) * 1e6
    compiled = ops.Ops.build(compiled=True)
    result = {"environment": environment(), "copy_gbps": copy_gbps, "weights_floor_us_per_layer": floor_us}
    deferred = None
    if "deferred" in variants:
        deferred = [fold_norms(w) for w in weights], torch.compile(silu_mul_scaled, dynamic=True)
    result["rows"] = [
        bench_rows(weights, int(rows), compiled, args.configs, floor_us, variants, deferred)
        for rows in args.rows.split(",")
    ]
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "rows_chain.json"), "w") as f:
        json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
