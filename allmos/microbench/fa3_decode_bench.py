"""FlashAttention-3's paged decode on bf16 and on FP8 pages, beside the Triton decode on the same shapes (needs a
CUDA GPU and FA3's `flash_attn_interface`: `../shared/device/wheels.sh --fa3` on the device machine).

    python -m allmos.microbench.fa3_decode_bench [--batches 16,64,256] [--context 1024] [--out FILE]

The reference for issue 21's FP8 decode: how close a hand-written CUDA kernel comes to the copy bandwidth on FP8
pages on this card, against how close ours comes (allmos.microbench.kernel_bench_fp8's calls). FA3's FP8 path takes
e4m3 q, k and v with one descale factor per (sequence, kv head), where our pages carry one scale per (token, kv
head): the FP8 row times FA3's kernel, not a configuration the engine can run (attention=flash refuses
kv_cache_dtype=fp8). Qwen3-0.6B heads, pages of 256 tokens, uniform contexts, CUDA-graph replays rotating over
disjoint page sets past the L2 (as kernel_bench_fp8). Bandwidth counts the bytes each kernel must read: K/V once
(and, for ours on FP8 pages, the scales), q read and out written. On an H100 at context 1024, FA3 read FP8 pages at
64-69% of the copy and ours at 74-80% (docs/results/2026-12-08-h100-session27).
"""

from __future__ import annotations

import argparse
import functools
import json

import torch
import triton

from allmos.microbench.kernel_bench import DTYPE, HEAD_DIM, NUM_HEADS, NUM_KV_HEADS

BLOCK_SIZE = 256
E4M3 = torch.float8_e4m3fn
VARIANTS = ("fa3_bf16", "fa3_fp8", "ours_bf16", "ours_fp8")


def fa3_calls(
    batch: int, context: int, fp8: bool, attend, sets: int | None = None, device: str = "cuda"
) -> tuple[list, int]:
    """`sets` FA3 decode calls (attend: flash_attn_with_kvcache; None: enough sets to rotate past the L2) over
    disjoint pages of one cache, and the bytes one call reads and writes. FP8: q, k, v in e4m3 with unit descales per
    (sequence, kv head)."""
    from allmos.microbench.gpu_timing import num_sets

    element_bytes = 1 if fp8 else 2
    kv_bytes = 2 * batch * context * NUM_KV_HEADS * HEAD_DIM * element_bytes
    sets = sets or num_sets(kv_bytes)
    per_seq = triton.cdiv(context, BLOCK_SIZE)
    blocks = sets * batch * per_seq
    shape = (blocks, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM)
    k_cache, v_cache = (torch.randn(shape, dtype=DTYPE, device=device) for _ in "kv")
    descales = {}
    if fp8:
        k_cache, v_cache = k_cache.to(E4M3), v_cache.to(E4M3)
        ones = torch.ones(batch, NUM_KV_HEADS, dtype=torch.float32, device=device)
        descales = {"q_descale": ones, "k_descale": ones, "v_descale": ones}
    tables = torch.randperm(blocks, device=device).view(sets, batch, per_seq).to(torch.int32)
    lens = torch.full((batch,), context, dtype=torch.int32, device=device)
    calls = []
    for table in tables:
        q = torch.randn(batch, 1, NUM_HEADS, HEAD_DIM, dtype=DTYPE, device=device)
        kwargs = {"cache_seqlens": lens, "page_table": table, "softmax_scale": HEAD_DIM**-0.5, "causal": True}
        calls.append(functools.partial(attend, q.to(E4M3) if fp8 else q, k_cache, v_cache, **kwargs, **descales))
    return calls, kv_bytes + batch * NUM_HEADS * HEAD_DIM * (element_bytes + 2)


def variant_calls(name: str, batch: int, context: int, attend) -> tuple[list, int]:
    from allmos.microbench.kernel_bench_fp8 import decode_calls

    if name.startswith("ours_"):
        return decode_calls(batch, context, "auto" if name == "ours_bf16" else "fp8")
    return fa3_calls(batch, context, name == "fa3_fp8", attend)


def bench(batch: int, context: int, copy_gbps: float, attend) -> list[dict]:
    from allmos.microbench.gpu_timing import gbps, graph_ms

    rows = []
    for name in VARIANTS:
        calls, num_bytes = variant_calls(name, batch, context, attend)
        ms = graph_ms(calls, num_bytes)
        rate = gbps(num_bytes, ms)
        rows.append({"batch": batch, "variant": name, "ms": ms, "gbps": rate, "share_of_copy": rate / copy_gbps})
        print(f"{batch:>6} {name:>10} {ms * 1e3:>8.1f} {rate:>8.0f} {rate / copy_gbps:>6.1%}", flush=True)
        del calls
        torch.cuda.empty_cache()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="16,64,256")
    parser.add_argument("--context", type=int, default=1024)
    parser.add_argument("--out", help="write the figures as JSON")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("fa3_decode_bench needs a CUDA GPU")
    try:
        from flash_attn_interface import flash_attn_with_kvcache
    except ImportError:
        parser.error("fa3_decode_bench needs FA3's flash_attn_interface (../shared/device/wheels.sh --fa3)")
    from allmos.microbench.gpu_timing import environment
    from allmos.microbench.kernel_bench import bench_copy

    torch.manual_seed(0)
    copy = bench_copy()
    print(f"{environment()}\ndevice-to-device copy: {copy['gbps']:.0f} GB/s (read + write); context {args.context}")
    print(f"{'batch':>6} {'variant':>10} {'us':>8} {'GB/s':>8} {'share':>6}")
    rows = []
    for batch in map(int, args.batches.split(",")):
        rows += bench(batch, args.context, copy["gbps"], flash_attn_with_kvcache)
    if args.out:
        with open(args.out, "w") as out:
            json.dump({"env": environment(), "copy": copy, "context": args.context, "rows": rows}, out, indent=1)


if __name__ == "__main__":
    main()
