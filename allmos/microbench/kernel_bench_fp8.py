"""The Triton paged decode kernel on FP8 pages (kv_cache_dtype=fp8) against bf16 pages (needs a CUDA GPU).

    python -m allmos.microbench.kernel_bench_fp8 [--batches 16,64,256] [--context 2048] [--out FILE]
    python -m allmos.microbench.kernel_bench_fp8 --tiles 64,128,256 --stages 2,5   # fp8 launches (raw Triton stages)
    python -m allmos.microbench.kernel_bench_fp8 --max-registers 0 --batches 64,256   # default cap vs none
    python -m allmos.microbench.kernel_bench_fp8 --warps 4,8 --splits 1,2 --batches 16,64  # warps, split counts
    python -m allmos.microbench.kernel_bench_fp8 --v-dim-major   # also FP8 V pages stored [H, D, block_size]
    python -m allmos.microbench.kernel_bench_fp8 --v-dim-major --tiles 64,128 --max-registers 128   # swept
    python -m allmos.microbench.kernel_bench_fp8 --head-major   # also FP8 K and V pages stored [H, block_size, D]

Qwen3-0.6B head shapes (16 q heads, 8 kv heads, head_dim 128), pages of 256 tokens, the default
heuristics, CUDA-graph replays rotating over input sets past the L2 (as kernel_bench). Bandwidth counts
the bytes the kernel really reads and writes: the context's K/V pages once (bf16: 2 bytes an element;
fp8: 1 byte an element plus the float32 scale of each (token, kv head), 4 bytes per 128-element row),
q read and out written. The share is of the device-to-device copy bandwidth measured in the same run.
With --v-dim-major, V's FP8 pages are stored [num_blocks, H, D, block_size] (tokens contiguous), which sm_90
can feed to the PV product without byte-wise loads (allmos.microbench.kernel_resources). With --head-major,
K's and V's FP8 pages are stored [num_blocks, H, block_size, D]: each kv head's slice of a page is one
contiguous run (32 KB) instead of a 128-byte row every 1 KB, as in the engine's token-major pages. Both are
handed to the kernel as views of the usual shape.
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json

import torch
import triton

from allmos.attention.kernels.decode import paged_decode_attention
from allmos.kv_store import fp8
from allmos.kv_store.base import KVScales
from allmos.microbench.gpu_timing import environment, gbps, graph_ms, num_sets
from allmos.microbench.kernel_bench import DTYPE, HEAD_DIM, NUM_HEADS, NUM_KV_HEADS, bench_copy

BLOCK_SIZE = 256


def quantized(cache: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """bf16 pages -> fp8 pages and their head-major scales [blocks, H, block_size], as the store writes them."""
    scales = fp8.row_scales(cache, None)
    return fp8.quantize(cache, scales), scales.transpose(1, 2).contiguous()


LAYOUTS = ("token_major", "v_dim_major", "head_major")


def laid_out(k_cache: torch.Tensor, v_cache: torch.Tensor, layout: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The same pages stored in `layout`, as views of the usual [num_blocks, block_size, H, D] shape: token_major
    as they are; v_dim_major: V stored [num_blocks, H, D, block_size]; head_major: K and V stored
    [num_blocks, H, block_size, D]."""
    if layout == "v_dim_major":
        return k_cache, v_cache.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    if layout == "head_major":
        return tuple(c.transpose(1, 2).contiguous().transpose(1, 2) for c in (k_cache, v_cache))
    if layout != "token_major":
        raise ValueError(f"layout must be one of {LAYOUTS}; got {layout!r}")
    return k_cache, v_cache


def decode_calls(batch: int, context: int, kv_cache_dtype: str, layout: str = "token_major", **launch) -> tuple:
    """The decode calls over disjoint page sets stored in `layout` (laid_out), and the bytes one call reads and
    writes."""
    per_token = NUM_KV_HEADS * (HEAD_DIM * 2 if kv_cache_dtype == "auto" else HEAD_DIM + 4)
    kv_bytes = 2 * batch * context * per_token
    count = num_sets(kv_bytes)
    blocks_per_seq = triton.cdiv(context, BLOCK_SIZE)
    num_blocks = count * batch * blocks_per_seq
    shape = (num_blocks, BLOCK_SIZE, NUM_KV_HEADS, HEAD_DIM)
    k_cache, v_cache = (torch.randn(shape, dtype=DTYPE, device="cuda") for _ in "kv")
    scales = None
    if kv_cache_dtype == "fp8":
        (k_cache, k_scales), (v_cache, v_scales) = quantized(k_cache), quantized(v_cache)
        scales = KVScales(k_scales, v_scales)
    k_cache, v_cache = laid_out(k_cache, v_cache, layout)
    tables = torch.randperm(num_blocks, device="cuda").view(count, batch, blocks_per_seq).to(torch.int32)
    lens = torch.full((batch,), context, dtype=torch.int32, device="cuda")
    calls = []
    for block_tables in tables:
        q = torch.randn(batch, NUM_HEADS, HEAD_DIM, dtype=DTYPE, device="cuda")
        run = functools.partial(paged_decode_attention, q, k_cache, v_cache, block_tables, lens, HEAD_DIM**-0.5)
        calls.append(functools.partial(run, out=torch.empty_like(q), scales=scales, **launch))
    q_bytes = batch * NUM_HEADS * HEAD_DIM * torch.finfo(DTYPE).bits // 8
    return calls, kv_bytes + 2 * q_bytes


# name: (kv_cache_dtype, page layout, its table label); the FP8 layouts beyond token_major are extra columns
VARIANTS = {
    "auto": ("auto", "token_major", "bf16"),
    "fp8": ("fp8", "token_major", "fp8"),
    "fp8_v_dim_major": ("fp8", "v_dim_major", "vdm"),
    "fp8_head_major": ("fp8", "head_major", "hm"),
}
EXTRA_VARIANTS = ("fp8_v_dim_major", "fp8_head_major")


def bench(batch: int, context: int, copy_gbps: float, variants=("auto", "fp8")) -> dict:
    """Each variant's time, GB/s and share of the copy bandwidth: bf16 pages (auto), FP8 pages (fp8), FP8
    pages with V stored dim-major (fp8_v_dim_major) or K and V head-major (fp8_head_major); each extra
    layout's speedup over fp8 as {layout}_speedup."""
    row = {"batch": batch, "context": context}
    for name in variants:
        kv_cache_dtype, layout, _ = VARIANTS[name]
        calls, num_bytes = decode_calls(batch, context, kv_cache_dtype, layout=layout)
        ms = graph_ms(calls, num_bytes)
        rate = gbps(num_bytes, ms)
        row[name] = {"bytes": num_bytes, "ms": ms, "gbps": rate, "share_of_copy": rate / copy_gbps}
        del calls
        torch.cuda.empty_cache()
    row["fp8_speedup"] = row["auto"]["ms"] / row["fp8"]["ms"]
    for name in EXTRA_VARIANTS:
        if name in row:
            row[f"{VARIANTS[name][1]}_speedup"] = row["fp8"]["ms"] / row[name]["ms"]
    return row


def sweep_fp8(batch: int, context: int, copy_gbps: float, grid: dict, layout: str = "token_major") -> list[dict]:
    """The fp8 decode over pages stored in `layout` (laid_out) at each launch of `grid` (tokens per tile,
    pipeline stages, register cap, warps, splits; None: the default heuristics' choice), beside the default."""
    rows = []
    for block_n in [None, *grid["tiles"]]:
        for num_stages in grid["stages"] if block_n else [None]:
            others = itertools.product([None, *grid["caps"]], grid["warps"], [None, *grid["splits"]])
            for cap, num_warps, splits in others:
                launch = {"block_n": block_n, "num_stages": num_stages, "max_registers": cap, "num_warps": num_warps}
                calls, num_bytes = decode_calls(batch, context, "fp8", **launch, num_splits=splits, layout=layout)
                ms = graph_ms(calls, num_bytes)
                row = {"batch": batch, "block_n": block_n or "default", "num_stages": num_stages or "default", "ms": ms}
                row |= {"max_registers": "default" if cap is None else cap or "none", "num_warps": num_warps}
                row |= {"num_splits": splits or "default", "gbps": gbps(num_bytes, ms)}
                rows.append(row | {"share_of_copy": row["gbps"] / copy_gbps})
                print(
                    f"{batch:>6} {row['block_n']:>8} {row['num_stages']:>7} {row['max_registers']:>7} {num_warps:>6} "
                    f"{row['num_splits']:>8} {ms * 1e3:>8.1f} {rows[-1]['share_of_copy']:>7.1%}"
                )
                del calls
                torch.cuda.empty_cache()
    return rows


def table_line(row: dict) -> str:
    a, f = row["auto"], row["fp8"]
    line = (
        f"{row['batch']:>6} {a['gbps']:>10.0f} {a['share_of_copy']:>6.1%} {f['gbps']:>9.0f} {f['share_of_copy']:>6.1%} "
        f"{a['ms'] * 1e3:>8.1f} {f['ms'] * 1e3:>7.1f} {row['fp8_speedup']:>7.2f}x"
    )
    for name in EXTRA_VARIANTS:
        if name in row:
            m, speedup = row[name], row[f"{VARIANTS[name][1]}_speedup"]
            line += f" {m['gbps']:>9.0f} {m['share_of_copy']:>6.1%} {m['ms'] * 1e3:>7.1f} {speedup:>7.2f}x"
    return line


def _ints(text: str | None, default: list) -> list:
    return [int(t) for t in text.split(",")] if text else default


def swept_layout(args) -> str:
    """The one page layout a sweep runs over (--v-dim-major or --head-major; token_major without either)."""
    if args.v_dim_major and args.head_major:
        raise SystemExit("kernel_bench_fp8: a sweep runs over one page layout: pass --v-dim-major or --head-major")
    return "v_dim_major" if args.v_dim_major else "head_major" if args.head_major else "token_major"


def run_sweep(args, copy: dict) -> None:
    columns = (("batch", 6), ("block_n", 8), ("stages", 7), ("regs", 7), ("warps", 6), ("splits", 8), ("fp8 us", 8))
    print(" ".join(f"{name:>{width}}" for name, width in (*columns, ("share", 7))))
    grid = {"tiles": _ints(args.tiles, []), "stages": _ints(args.stages, [None]), "caps": _ints(args.max_registers, [])}
    grid |= {"warps": _ints(args.warps, [4]), "splits": _ints(args.splits, [])}
    rows = []
    for batch in map(int, args.batches.split(",")):
        rows += sweep_fp8(batch, args.context, copy["gbps"], grid, swept_layout(args))
    if args.out:
        with open(args.out, "w") as out:
            record = {"env": environment(), "copy": copy, "context": args.context, "layout": swept_layout(args)}
            json.dump(record | {"fp8_sweep": rows}, out, indent=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batches", default="16,64,256")
    parser.add_argument("--context", type=int, default=2048)
    parser.add_argument("--out", help="write the figures as JSON")
    parser.add_argument("--tiles", help="fp8 only: sweep these tokens-per-tile values (e.g. 64,128,256)")
    parser.add_argument("--stages", help="with --tiles: pipeline stages to sweep (e.g. 2,5; default: the heuristic)")
    parser.add_argument(
        "--max-registers", help="fp8 only: sweep these register caps per thread beside the default (168) too (0: none)"
    )
    parser.add_argument("--warps", help="fp8 only: sweep these warp counts per program (default 4)")
    parser.add_argument("--splits", help="fp8 only: sweep these split counts beside the heuristic's (e.g. 1,2,4)")
    parser.add_argument(
        "--v-dim-major",
        action="store_true",
        help="also time FP8 pages with V stored [H, D, block_size]; with a sweep option, sweep over those instead",
    )
    parser.add_argument(
        "--head-major",
        action="store_true",
        help="also time FP8 pages with K, V stored [H, block_size, D]; with a sweep option, sweep over those instead",
    )
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("kernel_bench_fp8 needs a CUDA device")
    torch.manual_seed(0)
    copy = bench_copy()
    print(f"{environment()}\ndevice-to-device copy: {copy['gbps']:.0f} GB/s (read + write)")
    if args.tiles or args.max_registers or args.warps or args.splits:
        run_sweep(args, copy)
        return
    asked = {"fp8_v_dim_major": args.v_dim_major, "fp8_head_major": args.head_major}
    variants = ("auto", "fp8", *(name for name in EXTRA_VARIANTS if asked[name]))
    columns = (("batch", 6), ("bf16 GB/s", 10), ("share", 6), ("fp8 GB/s", 9), ("share", 6), ("bf16 us", 8))
    columns += (("fp8 us", 7), ("speedup", 8))
    for name in variants[2:]:
        label = VARIANTS[name][2]
        columns += ((f"{label} GB/s", 9), ("share", 6), (f"{label} us", 7), (f"{label}/fp8", 8))
    print(" ".join(f"{name:>{width}}" for name, width in columns))
    rows = []
    for batch in map(int, args.batches.split(",")):
        r = bench(batch, args.context, copy["gbps"], variants)
        rows.append(r)
        print(table_line(r), flush=True)
    if args.out:
        with open(args.out, "w") as out:
            json.dump({"env": environment(), "copy": copy, "context": args.context, "decode": rows}, out, indent=1)


if __name__ == "__main__":
    main()
