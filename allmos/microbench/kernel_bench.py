"""Bandwidth benchmarks of the Triton KV-store and paged decode kernels (needs a CUDA GPU).

    python -m allmos.microbench.kernel_bench --out DIR [--quick] [--sweep all|decode|prefill|none]

Reports, on Qwen3-0.6B head shapes (16 q heads, 8 kv heads, head_dim 128, bf16):
  * device-to-device copy bandwidth (the practical ceiling; do_bench median),
  * paged decode attention: our kernel with the default heuristic (splits merged in the split kernel,
    `fused_combine`), at batch 1 and 16 also with the two-kernel combine, the best of a sweep over
    (num_splits, block_n, num_warps, num_stages), torch SDPA (`sdpa_gather`: gather the pages to a dense
    copy, then SDPA; `sdpa_only`: SDPA alone on a pre-gathered dense copy), and flash-attn's
    flash_attn_with_kvcache when importable,
  * paged prefill attention (TFLOP/s): our kernel, default tiles and a small tile sweep, vs dense causal
    SDPA on contiguous tensors for fresh prompts,
  * KV store: our kernel vs torch index_put (`k_cache.view(-1, H, D)[slots] = k`).

Bandwidth counts the bytes that must move: K/V of the context read once, q read, out written (decode);
k/v read and written once (store).

Decode and store are timed as CUDA-graph replays of many back-to-back calls, as the engine runs them:
eager timing of a few-microsecond kernel measures Python launch overhead instead (seen on an H100, where
the same config varied 5x between eager runs). Successive calls rotate over enough input sets
(> 4x a 50 MB L2) that each call reads its K/V from HBM. Writes DIR/kernel_bench.json.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import os
from dataclasses import dataclass

import torch
import triton

from allmos.attention.kernels.decode import default_num_splits, paged_decode_attention
from allmos.attention.kernels.decode_merge import decode_counters
from allmos.attention.kernels.prefill import paged_prefill_attention
from allmos.kv_store.kernels.store import store_kv_triton
from allmos.microbench.gpu_timing import add_gbps, environment, gbps, graph_ms, host_us, median_ms, num_sets
from allmos.microbench.kernel_bench_tables import print_decode_table, print_prefill_table, print_store_table

NUM_HEADS, NUM_KV_HEADS, HEAD_DIM = 16, 8, 128  # Qwen3-0.6B
DTYPE = torch.bfloat16
BATCHES = (1, 16, 64, 256)
TWO_KERNEL_BATCHES = (1, 16)  # latency-bound batches where the fused combine is compared with two kernels
CONTEXTS = (512, 2048)
BLOCK_SIZES = (16, 256)
STORE_TOKENS = (16, 256, 4096, 32768)
SWEEP_SPLITS = (1, 2, 4, 8, 16, 32)
SWEEP_BLOCK_N = (32, 64, 128)
SWEEP_WARPS = (4, 8)
SWEEP_STAGES = (2, 3)
PREFILL_SHAPES = ((4, 2048, 2048), (16, 512, 512), (4, 512, 2048))  # (sequences, q_len, context_len)
PREFILL_CONFIGS = (
    (128, 64, 8, 2),
    (128, 64, 8, 3),
    (128, 128, 8, 2),
    (128, 64, 4, 2),
    (128, 32, 4, 3),
    (64, 64, 4, 2),
    (64, 64, 4, 3),
    (64, 128, 4, 2),
)  # block_m, block_n, warps, stages


# ---------------------------------------------------------------------------------------------------------
# Copy
# ---------------------------------------------------------------------------------------------------------


def bench_copy(num_bytes: int = 1 << 30) -> dict:
    src = torch.randn(num_bytes // 2, dtype=DTYPE, device="cuda")
    dst = torch.empty_like(src)
    ms = median_ms(lambda: dst.copy_(src))
    return {"bytes": num_bytes, "ms": ms, "gbps": gbps(2 * num_bytes, ms)}


# ---------------------------------------------------------------------------------------------------------
# Decode
# ---------------------------------------------------------------------------------------------------------


@dataclass
class DecodeBench:
    """One shared paged cache; each set is (q, block_tables, out) over its own disjoint pages."""

    k_cache: torch.Tensor
    v_cache: torch.Tensor
    context_lens: torch.Tensor
    counters: torch.Tensor  # the fused combine's, shared by all calls as the engine's layers share one
    sets: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
    context: int
    scale: float
    bytes_per_call: int


def make_decode_bench(batch: int, context: int, block_size: int) -> DecodeBench:
    elem = torch.finfo(DTYPE).bits // 8
    kv_bytes = 2 * batch * context * NUM_KV_HEADS * HEAD_DIM * elem
    count = num_sets(kv_bytes)
    blocks_per_seq = triton.cdiv(context, block_size)
    num_blocks = count * batch * blocks_per_seq
    shape = (num_blocks, block_size, NUM_KV_HEADS, HEAD_DIM)
    k_cache = torch.randn(shape, dtype=DTYPE, device="cuda")
    v_cache = torch.randn(shape, dtype=DTYPE, device="cuda")
    tables = torch.randperm(num_blocks, device="cuda").view(count, batch, blocks_per_seq).to(torch.int32)
    sets = []
    for block_tables in tables:
        q = torch.randn(batch, NUM_HEADS, HEAD_DIM, dtype=DTYPE, device="cuda")
        sets.append((q, block_tables, torch.empty_like(q)))
    context_lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    counters = decode_counters(batch, NUM_KV_HEADS, "cuda")
    q_bytes = batch * NUM_HEADS * HEAD_DIM * elem
    return DecodeBench(k_cache, v_cache, context_lens, counters, sets, context, HEAD_DIM**-0.5, kv_bytes + 2 * q_bytes)


def triton_calls(x: DecodeBench, **config) -> list:
    return [
        functools.partial(
            paged_decode_attention,
            q,
            x.k_cache,
            x.v_cache,
            block_tables,
            x.context_lens,
            x.scale,
            out=out,
            counters=x.counters,
            **config,
        )
        for q, block_tables, out in x.sets
    ]


def gather_dense(x: DecodeBench, block_tables: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """[batch, kv_heads, context, head_dim] views of each sequence's K and V, gathered from the pages."""
    batch = block_tables.shape[0]

    def one(cache):
        pages = cache[block_tables.long()]  # [batch, blocks, block_size, H, D]
        return pages.reshape(batch, -1, NUM_KV_HEADS, HEAD_DIM)[:, : x.context].transpose(1, 2)

    return one(x.k_cache), one(x.v_cache)


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float) -> torch.Tensor:
    """SDPA of q [batch, Hq, D] over dense k/v [batch, Hkv, ctx, D]."""
    q = q.unsqueeze(2)
    try:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale, enable_gqa=True)
    except TypeError:  # torch < 2.5 has no enable_gqa
        group = NUM_HEADS // NUM_KV_HEADS
        k, v = k.repeat_interleave(group, dim=1), v.repeat_interleave(group, dim=1)
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=scale)


def sdpa_timings(x: DecodeBench) -> dict:
    def gathered(q, block_tables):
        k, v = gather_dense(x, block_tables)
        return sdpa(q, k, v, x.scale)

    gather_calls = [functools.partial(gathered, q, bt) for q, bt, _ in x.sets]
    dense = [(q, *(t.contiguous() for t in gather_dense(x, bt))) for q, bt, _ in x.sets]
    dense_calls = [functools.partial(sdpa, q, k, v, x.scale) for q, k, v in dense]
    return {
        "torch_sdpa_gather_ms": graph_ms(gather_calls, x.bytes_per_call),
        "torch_sdpa_dense_only_ms": graph_ms(dense_calls, x.bytes_per_call),
    }


def flash_attn_timing(x: DecodeBench) -> dict:
    try:
        from flash_attn import flash_attn_with_kvcache
    except ImportError:
        return {"flash_attn": "not installed"}
    kwargs = {"cache_seqlens": x.context_lens, "softmax_scale": x.scale, "causal": True}
    calls = [
        functools.partial(flash_attn_with_kvcache, q.unsqueeze(1), x.k_cache, x.v_cache, block_table=bt, **kwargs)
        for q, bt, _ in x.sets
    ]
    try:
        return {"flash_attn_ms": graph_ms(calls, x.bytes_per_call)}
    except Exception as exc:  # noqa: BLE001 -- e.g. FA2 needs page sizes that are multiples of 256
        return {"flash_attn": f"failed: {type(exc).__name__}: {str(exc)[:120]}"}


def sweep_decode(x: DecodeBench) -> tuple[dict, list[dict]]:
    trials = []
    configs = itertools.product(SWEEP_SPLITS, SWEEP_BLOCK_N, SWEEP_WARPS, SWEEP_STAGES)
    for splits, block_n, warps, stages in configs:
        config = {"num_splits": splits, "block_n": block_n, "num_warps": warps, "num_stages": stages}
        try:
            trials.append({**config, "ms": graph_ms(triton_calls(x, **config), x.bytes_per_call, replays=5)})
        except Exception as exc:  # noqa: BLE001 -- e.g. out of shared memory for a large tile
            trials.append({**config, "error": f"{type(exc).__name__}: {str(exc)[:80]}"})
    timed = [t for t in trials if "ms" in t]
    return min(timed, key=lambda t: t["ms"]), trials


def bench_decode_shape(batch: int, context: int, block_size: int, sweep: bool) -> dict:
    x = make_decode_bench(batch, context, block_size)
    num_sms = torch.cuda.get_device_properties(0).multi_processor_count
    row = {
        "batch": batch,
        "context": context,
        "block_size": block_size,
        "bytes": x.bytes_per_call,
        "input_sets": len(x.sets),
        "default_num_splits": default_num_splits(batch, NUM_KV_HEADS, context, num_sms),
        "triton_default_ms": graph_ms(triton_calls(x), x.bytes_per_call),
        "triton_default_host_us": host_us(triton_calls(x)[0]),
    }
    if batch in TWO_KERNEL_BATCHES:
        row["triton_two_kernel_ms"] = graph_ms(triton_calls(x, fused_combine=False), x.bytes_per_call)
    row.update(sdpa_timings(x))
    row.update(flash_attn_timing(x))
    if sweep:
        best, trials = sweep_decode(x)
        row["triton_best"] = best
        row["sweep"] = trials
    return add_gbps(row, x.bytes_per_call)


# ---------------------------------------------------------------------------------------------------------
# Prefill (compute-bound: TFLOP/s, eager do_bench)
# ---------------------------------------------------------------------------------------------------------


def bench_prefill_shape(seqs: int, q_len: int, context: int, block_size: int, sweep: bool) -> dict:
    blocks_per_seq = triton.cdiv(context, block_size)
    shape = (seqs * blocks_per_seq, block_size, NUM_KV_HEADS, HEAD_DIM)
    k_cache = torch.randn(shape, dtype=DTYPE, device="cuda")
    v_cache = torch.randn(shape, dtype=DTYPE, device="cuda")
    block_tables = torch.randperm(shape[0], device="cuda").view(seqs, -1).to(torch.int32)
    q = torch.randn(seqs * q_len, NUM_HEADS, HEAD_DIM, dtype=DTYPE, device="cuda")
    cu_seqlens = torch.arange(0, seqs + 1, device="cuda", dtype=torch.int32) * q_len
    context_lens = torch.full((seqs,), context, dtype=torch.int32, device="cuda")
    out = torch.empty_like(q)

    def run(**config):
        return paged_prefill_attention(
            q, k_cache, v_cache, cu_seqlens, context_lens, block_tables, q_len, HEAD_DIM**-0.5, out=out, **config
        )

    visible = q_len * (context - q_len) + q_len * (q_len + 1) // 2  # causal (query, key) pairs per seq
    flops = 4 * seqs * visible * NUM_HEADS * HEAD_DIM
    row = {
        "seqs": seqs,
        "q_len": q_len,
        "context": context,
        "block_size": block_size,
        "flops": flops,
        "triton_default_ms": median_ms(run),
    }
    if q_len == context:  # fresh prompts: dense causal SDPA on contiguous tensors as the reference
        qd = q.view(seqs, q_len, NUM_HEADS, HEAD_DIM).transpose(1, 2)
        kd, vd = (torch.randn(seqs, NUM_HEADS, context, HEAD_DIM, dtype=DTYPE, device="cuda") for _ in "kv")
        row["torch_sdpa_dense_causal_ms"] = median_ms(
            lambda: torch.nn.functional.scaled_dot_product_attention(qd, kd, vd, is_causal=True)
        )
    if sweep:
        trials = []
        for block_m, block_n, warps, stages in PREFILL_CONFIGS:
            config = {"block_m": block_m, "block_n": block_n, "num_warps": warps, "num_stages": stages}
            try:
                trials.append({**config, "ms": median_ms(functools.partial(run, **config), rep=50)})
            except Exception as exc:  # noqa: BLE001 -- e.g. out of shared memory
                trials.append({**config, "error": f"{type(exc).__name__}: {str(exc)[:80]}"})
        row["sweep"] = trials
        row["triton_best"] = min((t for t in trials if "ms" in t), key=lambda t: t["ms"])
    for key in [k for k in row if k.endswith("_ms")]:
        row[key.replace("_ms", "_tflops")] = flops / (row[key] * 1e-3) / 1e12
    return row


# ---------------------------------------------------------------------------------------------------------
# KV store
# ---------------------------------------------------------------------------------------------------------


def bench_store(num_tokens: int, block_size: int = 16) -> dict:
    elem = torch.finfo(DTYPE).bits // 8
    io_bytes = 2 * 2 * num_tokens * NUM_KV_HEADS * HEAD_DIM * elem  # k and v, each read once, written once
    count = num_sets(io_bytes)
    num_blocks = triton.cdiv(2 * num_tokens * count, block_size)
    shape = (num_blocks, block_size, NUM_KV_HEADS, HEAD_DIM)
    k_cache = torch.randn(shape, dtype=DTYPE, device="cuda")
    v_cache = torch.randn(shape, dtype=DTYPE, device="cuda")
    all_slots = torch.randperm(num_blocks * block_size, device="cuda")[: count * num_tokens].view(count, -1)
    sets = [
        (
            torch.randn(num_tokens, NUM_KV_HEADS, HEAD_DIM, dtype=DTYPE, device="cuda"),
            torch.randn(num_tokens, NUM_KV_HEADS, HEAD_DIM, dtype=DTYPE, device="cuda"),
            slots,
        )
        for slots in all_slots
    ]

    def torch_store(k, v, slots):
        k_cache.view(-1, NUM_KV_HEADS, HEAD_DIM)[slots] = k
        v_cache.view(-1, NUM_KV_HEADS, HEAD_DIM)[slots] = v

    our_calls = [
        functools.partial(store_kv_triton, k, v, k_cache, v_cache, slots.to(torch.int32)) for k, v, slots in sets
    ]
    torch_calls = [functools.partial(torch_store, k, v, slots) for k, v, slots in sets]
    row = {
        "num_tokens": num_tokens,
        "bytes": io_bytes,
        "input_sets": count,
        "triton_ms": graph_ms(our_calls, io_bytes),
        "torch_index_put_ms": graph_ms(torch_calls, io_bytes),
    }
    return add_gbps(row, io_bytes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="directory for kernel_bench.json")
    parser.add_argument("--quick", action="store_true", help="no config sweeps, fewer shapes")
    parser.add_argument(
        "--sweep",
        choices=("all", "decode", "prefill", "none"),
        default="all",
        help="which kernels get a tile/split config sweep",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("kernel_bench needs a CUDA device")
    os.makedirs(args.out, exist_ok=True)
    torch.manual_seed(0)

    results = {"env": environment(), "copy": bench_copy()}
    print(f"{results['env']}\ndevice-to-device copy: {results['copy']['gbps']:.0f} GB/s (read + write)")

    batches = BATCHES[::2] if args.quick else BATCHES
    sweep = "none" if args.quick else args.sweep
    results["decode"] = []
    for block_size, batch, context in itertools.product(BLOCK_SIZES, batches, CONTEXTS):
        row = bench_decode_shape(batch, context, block_size, sweep in ("all", "decode"))
        print(
            f"decode block_size={block_size} batch={batch} context={context}: "
            f"default {row['triton_default_gbps']:.0f} GB/s, best {row.get('triton_best')}",
            flush=True,
        )
        results["decode"].append(row)
        torch.cuda.empty_cache()
    results["prefill"] = [
        bench_prefill_shape(*shape, block_size, sweep in ("all", "prefill"))
        for block_size, shape in itertools.product(BLOCK_SIZES, PREFILL_SHAPES)
    ]
    results["store_kv"] = [bench_store(n) for n in STORE_TOKENS]

    path = os.path.join(args.out, "kernel_bench.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    print_decode_table(results["decode"])
    print_prefill_table(results["prefill"])
    print_store_table(results["store_kv"])
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
