"""A batch-1 decode layer's kernels (projections, rope, attention) as one chain (needs a CUDA GPU).

    python -m allmos.microbench.layer_chain [--layers 28] [--context 512] [--sweep all] [--out DIR]

Each layer runs the kernels a batch-1 decode step runs with everything on, in the model's order:
add_rms_norm+qkv, the q/k norm + RoPE kernel that also stores the new token's K/V, the Triton paged decode
attention over `--context` tokens, o, add_rms_norm+gate_up, silu_mul+down, with each layer's own weights
and KV pages (consecutive) so that every byte comes from HBM. With --context 0 there is neither rope nor
attention: qkv's first 2048 outputs stand in for attention's. With a context the chain is also timed with
the rope kernel's work in the qkv GEMV's epilogue (rope.fuse_qkv: allmos.linear.kernels.gemv_rope). The layers are
captured in one CUDA graph and timed as replays, with and without programmatic dependent launch (PDL).
The figure is microseconds per layer against the weights' bytes at the copy bandwidth: at one row the
kernels are each a few microseconds long, and what a chain loses between them (ramp-up, tails, the
launch) is what this measures, which a benchmark of one kernel repeated cannot show.

`--sweep linear` varies one projection's launch config at a time (the others at their defaults), then
runs the best of each together; `--sweep attention` (with a context) varies the attention's split count
and tile; `--sweep all` does both, the attention with the best projection configs.
"""

from __future__ import annotations

import argparse
import json
import os
import types

import torch

from allmos.attention.kernels.decode import decode_counters, paged_decode_attention
from allmos.kv_store.base import KVPages, KVTarget
from allmos.linear.kernels.gemv import add_rms_norm_linear, silu_mul_linear, skinny_linear
from allmos.linear.kernels.gemv_config import accumulator_fits, default_config
from allmos.linear.kernels.gemv_rope import add_rms_norm_qkv_rope, rope_counters
from allmos.microbench.gpu_timing import environment, replay_ms
from allmos.microbench.kernel_bench import bench_copy
from allmos.rope.base import QKVRope
from allmos.rope.kernels.qk_rope import qk_norm_rope_triton

DTYPE = torch.bfloat16
HIDDEN, Q_WIDTH, KV_WIDTH, QKV_WIDTH, INTERMEDIATE = 1024, 2048, 1024, 4096, 3072
SHAPES = {  # projection: (out_features, in_features)
    "qkv": (QKV_WIDTH, HIDDEN),
    "o": (HIDDEN, Q_WIDTH),
    "gate_up": (2 * INTERMEDIATE, HIDDEN),
    "down": (HIDDEN, INTERMEDIATE),
}
EPS = 1e-6
NUM_HEADS, NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE, MAX_MODEL_LEN = 16, 8, 128, 256, 4096
ATTENTION_CANDIDATES = [{"num_splits": s, "block_n": n} for s in (1, 2, 4, 8, 16, 32, 64) for n in (16, 32, 64)]
CANDIDATES = [
    {"block_n": n, "block_k": k, "num_warps": w}
    for w in (4, 8, 16)
    for n in (1, 2, 4, 8, 16, 32)
    for k in (512, 1024, 2048, 4096)
    if n * k >= 1024 * w  # at least 8 weight elements per thread in flight
]


def kv_pages(context: int, rotary: tuple | None) -> dict:
    """One layer's cache of `context` tokens in consecutive pages, with a block table as wide as the
    engine's (max_model_len / block_size), since the default split count depends on that width."""
    if context == 0:
        return {}
    pages = -(-context // BLOCK_SIZE)
    shape = (pages, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM)
    table = torch.zeros(1, MAX_MODEL_LEN // BLOCK_SIZE, dtype=torch.int32, device="cuda")
    table[0, :pages] = torch.arange(pages, dtype=torch.int32, device="cuda")
    newest = torch.tensor([context - 1], dtype=torch.int64, device="cuda")
    return {
        "k_cache": torch.randn(shape, dtype=DTYPE, device="cuda"),
        "v_cache": torch.randn(shape, dtype=DTYPE, device="cuda"),
        "block_table": table,
        "context_lens": torch.tensor([context], dtype=torch.int32, device="cuda"),
        "counters": decode_counters(1, NUM_KV_HEADS, "cuda"),
        "position": newest,
        "slot": newest,  # the pages are 0, 1, ... in order
        "q_norm": (1 + 0.1 * torch.randn(HEAD_DIM, device="cuda")).to(DTYPE),
        "k_norm": (1 + 0.1 * torch.randn(HEAD_DIM, device="cuda")).to(DTYPE),
        "rotary": rotary,
        "rope_counters": rope_counters(NUM_HEADS + 2 * NUM_KV_HEADS, "cuda"),
    }


def weights_floor_us(context: int, copy_gbps: float) -> float:
    """Microseconds a layer's weights and `context` tokens of its K/V take at the copy bandwidth."""
    kv_bytes = 2 * 2 * context * NUM_KV_HEADS * HEAD_DIM
    return (sum(2 * n * k for n, k in SHAPES.values()) + kv_bytes) / (copy_gbps * 1e9) * 1e6


def rotary_tables(max_positions: int = MAX_MODEL_LEN, base: float = 1e6) -> tuple[torch.Tensor, torch.Tensor]:
    inv_freq = base ** -(torch.arange(0, HEAD_DIM, 2, dtype=torch.float32, device="cuda") / HEAD_DIM)
    angles = torch.outer(torch.arange(max_positions, dtype=torch.float32, device="cuda"), inv_freq)
    return angles.cos().contiguous(), angles.sin().contiguous()


def layer_weights(layers: int, context: int = 0) -> list[dict]:
    def weight(n: int, k: int) -> torch.Tensor:
        return torch.randn(n, k, dtype=DTYPE, device="cuda") * k**-0.5

    def norm() -> torch.Tensor:
        return (1 + 0.1 * torch.randn(HIDDEN, device="cuda")).to(DTYPE)

    rotary = rotary_tables() if context else None
    return [
        {
            **{name: weight(*shape) for name, shape in SHAPES.items()},
            "norm1": norm(),
            "norm2": norm(),
            **kv_pages(context, rotary),
        }
        for _ in range(layers)
    ]


def qkv_rope(w: dict) -> QKVRope:
    """The layer's rope step as the qkv GEMV's epilogue takes it (the norms and tables as their modules hold them)."""
    norms = [types.SimpleNamespace(weight=w[name], eps=EPS) for name in ("q_norm", "k_norm")]
    rotary = types.SimpleNamespace(cos=w["rotary"][0], sin=w["rotary"][1])
    pages = KVPages(w["k_cache"], w["v_cache"], w["slot"])
    return QKVRope(w["position"], *norms, rotary, NUM_HEADS, NUM_KV_HEADS, pages)


def project_qkv(x, residual, w: dict, configs: dict, pdl: bool):
    """(qkv, residual, whether the rope step is done): with configs["qkv_rope"] and a cache, in the epilogue."""
    if configs.get("qkv_rope") and "k_cache" in w:
        qkv, residual = add_rms_norm_qkv_rope(
            x, residual, w["norm1"], EPS, w["qkv"], None, qkv_rope(w), w["rope_counters"], pdl=pdl, **configs["qkv"]
        )
        return qkv, residual, True
    qkv, residual = add_rms_norm_linear(x, residual, w["norm1"], EPS, w["qkv"], pdl=pdl, **configs["qkv"])
    return qkv, residual, False


def attend(qkv: torch.Tensor, w: dict, config: dict, pdl: bool, rope_done: bool = False) -> torch.Tensor:
    if "k_cache" not in w:
        return qkv[:, :Q_WIDTH]
    q = qkv[:, :Q_WIDTH].view(1, NUM_HEADS, HEAD_DIM)
    k = qkv[:, Q_WIDTH : Q_WIDTH + KV_WIDTH].view(1, NUM_KV_HEADS, HEAD_DIM)
    v = qkv[:, Q_WIDTH + KV_WIDTH :].view(1, NUM_KV_HEADS, HEAD_DIM)
    if not rope_done:
        target = KVTarget(v, w["k_cache"], w["v_cache"], w["slot"])
        qk_norm_rope_triton(w["position"], q, k, w["q_norm"], w["k_norm"], EPS, *w["rotary"], target, pdl=pdl)
    out = paged_decode_attention(
        q,
        w["k_cache"],
        w["v_cache"],
        w["block_table"],
        w["context_lens"],
        HEAD_DIM**-0.5,
        counters=w["counters"],
        pdl=pdl,
        **config,
    )
    return out.view(1, Q_WIDTH)


def run_layer(x, residual, w: dict, configs: dict, pdl: bool):
    qkv, residual, rope_done = project_qkv(x, residual, w, configs, pdl)
    o = skinny_linear(attend(qkv, w, configs["attention"], pdl, rope_done), w["o"], pdl=pdl, **configs["o"])
    gate_up, residual = add_rms_norm_linear(o, residual, w["norm2"], EPS, w["gate_up"], pdl=pdl, **configs["gate_up"])
    return silu_mul_linear(gate_up, w["down"], pdl=pdl, **configs["down"]), residual


def chain_us_per_layer(weights: list[dict], configs: dict, pdl: bool, replays: int = 20) -> float:
    x = torch.randn(1, HIDDEN, dtype=DTYPE, device="cuda")
    residual = torch.randn(1, HIDDEN, dtype=DTYPE, device="cuda")

    def chain():
        h, r = x, residual
        for w in weights:
            h, r = run_layer(h, r, w, configs, pdl)
        return h

    times = sorted(ms * 1e3 / len(weights) for ms in replay_ms(chain, chain, replays))
    return times[len(times) // 2]


def defaults() -> dict:
    return {**{name: default_config(1, n, k) for name, (n, k) in SHAPES.items()}, "attention": {}}


def fitting(name: str) -> list[dict]:
    n, k = SHAPES[name]
    whole = 1 << (k - 1).bit_length()
    return [c for c in CANDIDATES if c["block_k"] <= whole and accumulator_fits(1, **c) and n // c["block_n"] >= 32]


def sweep(weights: list[dict], base_us: float) -> tuple[dict, list[dict]]:
    best, rows = defaults(), []
    for name in SHAPES:
        for config in fitting(name):
            configs = {**defaults(), name: config}
            us = chain_us_per_layer(weights, configs, pdl=True)
            rows.append({"projection": name, **config, "us_per_layer": us, "vs_default": us / base_us})
            print(f"  {name:8s} {config}  {us:7.2f} us/layer  {us / base_us:.3f}x", flush=True)
        ranked = sorted((r for r in rows if r["projection"] == name), key=lambda r: r["us_per_layer"])
        best[name] = {key: ranked[0][key] for key in ("block_n", "block_k", "num_warps")}
    return best, rows


def sweep_attention(weights: list[dict], gemv_configs: dict, base_us: float) -> tuple[dict, list[dict]]:
    rows = []
    for config in ATTENTION_CANDIDATES:
        us = chain_us_per_layer(weights, {**gemv_configs, "attention": config}, pdl=True)
        rows.append({**config, "us_per_layer": us, "vs_default": us / base_us})
        print(f"  attention {config}  {us:7.2f} us/layer  {us / base_us:.3f}x", flush=True)
    best = min(rows, key=lambda r: r["us_per_layer"])
    return {"num_splits": best["num_splits"], "block_n": best["block_n"]}, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--context", type=int, default=0, help="cached tokens the attention reads (0: none)")
    parser.add_argument(
        "--sweep",
        choices=("linear", "attention", "all"),
        help="vary each projection's launch config, the attention's split count and tile (with a context), or both",
    )
    parser.add_argument("--out", help="directory for layer_chain.json")
    args = parser.parse_args()
    weights = layer_weights(args.layers, args.context)
    copy_gbps = bench_copy()["gbps"]
    floor_us = weights_floor_us(args.context, copy_gbps)
    result = {"environment": environment(), "copy_gbps": copy_gbps, "weights_floor_us_per_layer": floor_us}
    for pdl in (False, True):
        result[f"default_pdl_{pdl}_us"] = chain_us_per_layer(weights, defaults(), pdl)
    print(f"weights and {args.context} tokens of KV at copy bandwidth ({copy_gbps:.0f} GB/s): {floor_us:.2f} us/layer")
    for pdl in (False, True):
        us = result[f"default_pdl_{pdl}_us"]
        print(f"default configs, pdl={pdl}: {us:.2f} us/layer ({floor_us / us:.0%} of the copy bandwidth)")
    if args.context:
        result["qkv_rope_pdl_True_us"] = chain_us_per_layer(weights, defaults() | {"qkv_rope": True}, pdl=True)
        us = result["qkv_rope_pdl_True_us"]
        print(f"rope in the qkv epilogue (rope.fuse_qkv), pdl=True: {us:.2f} us/layer ({floor_us / us:.0%})")
    best = defaults()
    if args.sweep in ("linear", "all"):
        best, result["sweep"] = sweep(weights, result["default_pdl_True_us"])
        result["best_pdl_True_us"] = chain_us_per_layer(weights, best, pdl=True)
        print(f"best of each: {best}\n  {result['best_pdl_True_us']:.2f} us/layer")
    if args.sweep in ("attention", "all") and args.context:
        base_us = result.get("best_pdl_True_us", result["default_pdl_True_us"])
        best["attention"], result["attention_sweep"] = sweep_attention(weights, best, base_us)
        result["best_with_attention_us"] = chain_us_per_layer(weights, best, pdl=True)
        print(f"with attention {best['attention']}: {result['best_with_attention_us']:.2f} us/layer")
    result["best_configs"] = best
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "layer_chain.json"), "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
