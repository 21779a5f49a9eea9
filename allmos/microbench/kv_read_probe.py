"""How fast can decode attention read the KV cache? (needs a CUDA GPU)

    python -m allmos.microbench.kv_read_probe --out FILE [--batches 102,256] [--context 1100]

Measures, as CUDA-graph replays on one GPU:
- the ceilings: a device-to-device copy (bytes read plus written) and a read-only stream (a Triton kernel
  that sums a 1 GiB buffer), so the attention's figure can be set against both;
- paged_decode_attention at each batch size (context `--context`, Qwen3-0.6B's heads, block size 256,
  each sequence's pages consecutive as a fresh engine hands them out), with the cache token-major (the
  engine's [blocks, block_size, kv_heads, head_dim]) and head-major ([blocks, kv_heads, block_size,
  head_dim], seen by the kernel through a transposed view), at several num_stages and block_n.
"""

from __future__ import annotations

import argparse
import functools
import json

import torch
import triton
import triton.language as tl

from allmos.attention.kernels.decode import paged_decode_attention
from allmos.attention.kernels.decode_merge import decode_counters
from allmos.microbench.gpu_timing import environment, gbps, graph_ms

NUM_HEADS, NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE = 16, 8, 128, 256
STREAM_BYTES = 1 << 30
CONFIGS = ((64, 2), (64, 3), (64, 4), (128, 2), (128, 3))  # (block_n, num_stages)


@triton.jit
def _sum_kernel(x_ptr, out_ptr, n, BLOCK: tl.constexpr, PER_PROGRAM: tl.constexpr):
    start = tl.program_id(0) * BLOCK * PER_PROGRAM
    acc = tl.zeros((BLOCK,), dtype=tl.float32)
    for i in range(PER_PROGRAM):
        offs = start + i * BLOCK + tl.arange(0, BLOCK)
        acc += tl.load(x_ptr + offs, mask=offs < n, other=0.0).to(tl.float32)
    tl.store(out_ptr + tl.program_id(0), tl.sum(acc, axis=0))


def ceilings() -> dict:
    src = torch.randn(STREAM_BYTES // 2, dtype=torch.bfloat16, device="cuda")
    dst = torch.empty_like(src)
    copy_ms = graph_ms([lambda: dst.copy_(src)], 2 * STREAM_BYTES)
    block, per_program = 4096, 16
    grid = triton.cdiv(src.numel(), block * per_program)
    partial = torch.empty(grid, dtype=torch.float32, device="cuda")

    def read():
        _sum_kernel[(grid,)](src, partial, src.numel(), BLOCK=block, PER_PROGRAM=per_program, num_warps=8)

    read_ms = graph_ms([read], STREAM_BYTES)
    torch_ms = graph_ms([lambda: src.sum(dtype=torch.float32)], STREAM_BYTES)
    return {
        "copy_gbps": gbps(2 * STREAM_BYTES, copy_ms),
        "read_triton_gbps": gbps(STREAM_BYTES, read_ms),
        "read_torch_sum_gbps": gbps(STREAM_BYTES, torch_ms),
    }


def make_cache(num_blocks: int, head_major: bool) -> torch.Tensor:
    if head_major:
        cache = torch.randn(num_blocks, NUM_KV_HEADS, BLOCK_SIZE, HEAD_DIM, dtype=torch.bfloat16, device="cuda")
        return cache.transpose(1, 2)
    return torch.randn(num_blocks, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM, dtype=torch.bfloat16, device="cuda")


def bench_layouts(batch: int, context: int) -> list[dict]:
    pages = triton.cdiv(context, BLOCK_SIZE)
    tables = torch.arange(batch * pages, dtype=torch.int32, device="cuda").view(batch, pages)
    lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    q = torch.randn(batch, NUM_HEADS, HEAD_DIM, dtype=torch.bfloat16, device="cuda")
    out = torch.empty_like(q)
    counters = decode_counters(batch, NUM_KV_HEADS, "cuda")
    kv_bytes = 2 * batch * context * NUM_KV_HEADS * HEAD_DIM * 2
    rows = []
    for head_major in (False, True):
        k, v = make_cache(batch * pages, head_major), make_cache(batch * pages, head_major)
        call = functools.partial(paged_decode_attention, q, k, v, tables, lens, HEAD_DIM**-0.5, out=out)
        reference = call(counters=counters).clone()
        for block_n, stages in CONFIGS:
            run = functools.partial(call, counters=counters, block_n=block_n, num_stages=stages)
            if not torch.allclose(run(), reference, atol=2e-2, rtol=0):
                raise AssertionError(f"block_n={block_n} num_stages={stages} disagrees with the default")
            ms = graph_ms([run], kv_bytes)
            layout = "head_major" if head_major else "token_major"
            row = {"batch": batch, "context": context, "layout": layout, "block_n": block_n, "stages": stages}
            rows.append(row | {"us": ms * 1e3, "gbps": gbps(kv_bytes, ms)})
        del k, v
    return rows


def bench_tiles(batch: int, context: int) -> list[dict]:
    """The engine's case: token-major cache, contexts uniform in [context / 2, 3 context / 2], longest
    first, the default split count; each (block_n, num_stages) of CONFIGS."""
    gen = torch.Generator(device="cuda").manual_seed(batch * 7919 + context)
    lens = torch.randint(context // 2, 3 * context // 2 + 1, (batch,), generator=gen, device="cuda")
    lens = lens.to(torch.int32)
    pages = triton.cdiv(3 * context // 2, BLOCK_SIZE)
    tables = torch.randperm(batch * pages, device="cuda", generator=gen).view(batch, pages).to(torch.int32)
    k, v = make_cache(batch * pages, False), make_cache(batch * pages, False)
    q = torch.randn(batch, NUM_HEADS, HEAD_DIM, dtype=torch.bfloat16, device="cuda")
    out = torch.empty_like(q)
    order = torch.argsort(lens, descending=True)
    counters = decode_counters(batch, NUM_KV_HEADS, "cuda")
    kv_bytes = 2 * int(lens.sum()) * NUM_KV_HEADS * HEAD_DIM * 2
    call = functools.partial(
        paged_decode_attention, q, k, v, tables, lens, HEAD_DIM**-0.5, out=out, seq_order=order, counters=counters
    )
    reference = call().clone()
    row = {"batch": batch, "context": context, "kv_bytes": kv_bytes}
    for block_n, stages in CONFIGS:
        run = functools.partial(call, block_n=block_n, num_stages=stages)
        if not torch.allclose(run(), reference, atol=2e-2, rtol=0):
            raise AssertionError(f"block_n={block_n} num_stages={stages} disagrees with the default")
        row[f"n{block_n}_s{stages}_us"] = graph_ms([run], kv_bytes) * 1e3
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=None)
    parser.add_argument("--batches", default="102,256")
    parser.add_argument("--context", type=int, default=1100)
    parser.add_argument("--no-layouts", action="store_true", help="skip the layout comparison")
    parser.add_argument("--tile-batches", default="", help="batch sizes of the engine-like tile sweep")
    parser.add_argument("--tile-contexts", default="512,1100,2048")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        parser.error("kv_read_probe needs a CUDA GPU")
    limits = ceilings()
    print("  ".join(f"{k} {v:6.0f}" for k, v in limits.items()))
    rows = [] if args.no_layouts else [r for b in args.batches.split(",") for r in bench_layouts(int(b), args.context)]
    for r in rows:
        print(f"batch {r['batch']:4d} {r['layout']:11s} block_n {r['block_n']:3d} stages {r['stages']}: "
              f"{r['us']:8.1f} us {r['gbps']:6.0f} GB/s")  # fmt: skip
    tiles = [
        bench_tiles(int(b), int(c))
        for b in filter(None, args.tile_batches.split(","))
        for c in args.tile_contexts.split(",")
    ]
    for r in tiles:
        times = "  ".join(f"{k[:-3]} {v:7.1f}" for k, v in r.items() if k.endswith("_us"))
        print(f"batch {r['batch']:4d} context ~{r['context']:5d}: {times} us")
    if args.out:
        with open(args.out, "w") as f:
            record = {"environment": environment(), "ceilings": limits, "rows": rows, "tiles": tiles}
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
