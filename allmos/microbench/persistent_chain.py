"""Batch-1 projections of every layer in one persistent kernel against a kernel per GEMV (needs a CUDA GPU).

    python -m allmos.microbench.persistent_chain [--layers 28] [--context 0] [--warps 8,16]
        [--prefetch registers,none,l2] [--out DIR]

The question before building a fused per-layer decode kernel: with one program per SM running all layers,
a grid-wide barrier between GEMVs and each program's next weight slice on its way before it waits (into
registers, or into the L2 a phase ahead; allmos.microbench.persistent_layers), how close does a layer come
to its weights' time at the copy bandwidth, against the engine's batch-1 GEMVs (layer_chain at context 0:
norm+qkv, o, norm+gate_up, SiLU+down, with and without PDL) over the same weights? Each persistent
variant is first checked against the torch reference of its math and the barrier's arrival count, then
timed as CUDA-graph replays; the figure is microseconds per layer. With --context, both sides run
attention over that many tokens (the new one included): layer_chain's chain adds the q/k norm+RoPE kernel
and the paged decode attention (and is also timed with the rope work in the qkv GEMV, the engine's batch-1
path); the persistent kernel adds its attention phase (allmos.microbench.persistent_attention). A last
variant per warp count runs without the barriers (its results are wrong): how much of the persistent
figure the barriers themselves cost.
"""

from __future__ import annotations

import argparse
import json
import os

import torch

from allmos.microbench.layer_chain import (
    BLOCK_SIZE,
    EPS,
    HEAD_DIM,
    NUM_HEADS,
    NUM_KV_HEADS,
    Q_WIDTH,
    SHAPES,
    chain_us_per_layer,
    defaults,
    layer_weights,
    weights_floor_us,
)

DTYPE = torch.bfloat16


HEADS = {"num_heads": NUM_HEADS, "num_kv_heads": NUM_KV_HEADS, "head_dim": HEAD_DIM, "block_size": BLOCK_SIZE}


def check(runner, w: dict, hidden: int) -> float:
    """Largest error of the kernel's stream against the reference, relative to the stream's largest value;
    raises if the barrier counted other than one arrival per program per phase."""
    from allmos.microbench.persistent_layers import reference_layers

    h = torch.randn(hidden, dtype=DTYPE, device="cuda")
    attention = runner.attention and {k: v.clone() if torch.is_tensor(v) else v for k, v in runner.attention.items()}
    want = reference_layers(h.clone(), w, Q_WIDTH, EPS, attention).float()
    got = runner.run(h.clone()).float()
    torch.cuda.synchronize()
    if int(runner.counter.item()) != runner.arrivals():
        raise RuntimeError(f"barrier counter {int(runner.counter.item())}, expected {runner.arrivals()}")
    return float((got - want).abs().max() / want.abs().max())


def persistent_us_per_layer(runner, hidden: int, replays: int = 20) -> float:
    from allmos.microbench.gpu_timing import replay_ms

    h = torch.randn(hidden, dtype=DTYPE, device="cuda")
    times = sorted(ms * 1e3 / runner.layers for ms in replay_ms(lambda: runner.run(h), lambda: runner.run(h), replays))
    return times[len(times) // 2]


def parse_warps(text: str) -> list[int]:
    warps = [int(v) for v in text.split(",")]
    if any(w not in (1, 2, 4, 8, 16, 32) for w in warps):
        raise ValueError(f"--warps: each must be a power of 2 up to 32; got {text}")
    return warps


def parse_prefetch(text: str) -> list[str]:
    from allmos.microbench.persistent_layers import PREFETCH_MODES

    modes = text.split(",")
    if any(m not in PREFETCH_MODES for m in modes):
        raise ValueError(f"--prefetch: each must be one of {', '.join(PREFETCH_MODES)}; got {text}")
    return modes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", type=int, default=28)
    parser.add_argument("--context", type=int, default=0, help="tokens attention reads, the new one included (0: none)")
    parser.add_argument("--warps", default="8,16", help="warps a program, one variant each")
    parser.add_argument(
        "--prefetch", default="registers,none,l2", help="how the next phase's weights travel, one variant each"
    )
    parser.add_argument("--out", help="directory for persistent_chain.json")
    args = parser.parse_args()
    try:
        warps, modes = parse_warps(args.warps), parse_prefetch(args.prefetch)
    except ValueError as err:
        parser.error(str(err))
    if not torch.cuda.is_available():
        parser.error("persistent_chain needs a CUDA GPU")
    from allmos.microbench.gpu_timing import environment
    from allmos.microbench.kernel_bench import bench_copy
    from allmos.microbench.persistent_attention import attention_inputs
    from allmos.microbench.persistent_layers import PersistentLayers, stacked

    weights = layer_weights(args.layers, args.context)
    copy_gbps = bench_copy()["gbps"]
    floor_us = weights_floor_us(args.context, copy_gbps)
    env = environment()
    result = {"environment": env, "copy_gbps": copy_gbps, "context": args.context, "rows": []}
    result["weights_floor_us_per_layer"] = floor_us
    print(
        f"{env['device']}: weights and {args.context} tokens of K/V at copy ({copy_gbps:.0f} GB/s):",
        f"{floor_us:.2f} us/layer",
    )
    chains = [(f"kernel per GEMV, pdl={pdl}", defaults(), pdl) for pdl in (False, True)]
    if args.context:
        chains.append(
            (
                "kernel per GEMV, rope in the qkv GEMV (the engine's batch-1 path), pdl=True",
                defaults() | {"qkv_rope": True},
                True,
            )
        )
    for name, configs, pdl in chains:
        us = chain_us_per_layer(weights, configs, pdl)
        result["rows"].append({"variant": name, "us_per_layer": us})
        print(
            f"{name} (layer_chain, context {args.context}): {us:.2f} us/layer ({floor_us / us:.0%} of copy)", flush=True
        )
    w = stacked(weights)
    hidden = SHAPES["qkv"][1]
    attention = attention_inputs(args.layers, args.context, HEADS, "cuda") if args.context else None
    for num_warps in warps:
        for prefetch in modes:
            runner = PersistentLayers(
                w, Q_WIDTH, EPS, env["num_sms"], prefetch=prefetch, num_warps=num_warps, attention=attention
            )
            error = check(runner, w, hidden)
            us = persistent_us_per_layer(runner, hidden)
            name = f"persistent, {num_warps} warps, prefetch={prefetch}"
            result["rows"].append({"variant": name, "us_per_layer": us, "max_rel_error": error})
            print(f"{name}: {us:.2f} us/layer ({floor_us / us:.0%} of copy), error {error:.2e}", flush=True)
        runner = PersistentLayers(w, Q_WIDTH, EPS, env["num_sms"], num_warps=num_warps, sync=False, attention=attention)
        us = persistent_us_per_layer(runner, hidden)
        name = f"persistent, {num_warps} warps, no barrier (wrong results: timing only)"
        result["rows"].append({"variant": name, "us_per_layer": us})
        print(f"{name}: {us:.2f} us/layer ({floor_us / us:.0%} of copy)", flush=True)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        with open(os.path.join(args.out, "persistent_chain.json"), "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
