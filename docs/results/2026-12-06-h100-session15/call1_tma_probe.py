"""Exploration (session 15): can a TMA-descriptor Triton GEMM beat cuBLAS for Qwen3-0.6B's projections at
64..256 rows? Plain y = x W^T, split-K finished in-kernel (the repo's semaphore), optional PDL with the first
weight chunks loaded before the wait. Prints per (projection, rows): cuBLAS us, best TMA us and config."""

import itertools
import json
import os
import sys

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from triton.tools.tensor_descriptor import TensorDescriptor

from allmos.linear.kernels.gemm import new_split_counters
from allmos.linear.kernels.gemm_kernel import PLAIN, _finish_split
from allmos.microbench.gpu_timing import graph_ms, num_sets
from allmos.triton_shared.pdl import wait_for_previous_kernel

PROJ = {"qkv": (4096, 1024), "o": (1024, 2048), "gate_up": (6144, 1024), "down": (1024, 3072)}


@triton.jit
def tma_gemm(a_desc, w_desc, y_ptr, partial_ptr, counter_ptr, M, N, K, split_k, k_per_split, stride_ym,
             BM: tl.constexpr, BN: tl.constexpr, BK: tl.constexpr, STAGES: tl.constexpr, USE_PDL: tl.constexpr,
             EARLY: tl.constexpr):
    pid_n, pid_m, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    off_m, off_n = pid_m * BM, pid_n * BN
    k_start = pid_k * k_per_split
    k_end = tl.minimum(k_start + k_per_split, K)
    acc = tl.zeros((BM, BN), dtype=tl.float32)
    if EARLY:
        w0 = w_desc.load([off_n, k_start])  # the weight chunk does not depend on the previous kernel
        wait_for_previous_kernel(USE_PDL)
        a0 = a_desc.load([off_m, k_start])
        acc = tl.dot(a0, w0.T, acc)
        for k in tl.range(k_start + BK, k_end, BK, num_stages=STAGES):
            a = a_desc.load([off_m, k])
            w = w_desc.load([off_n, k])
            acc = tl.dot(a, w.T, acc)
    else:
        wait_for_previous_kernel(USE_PDL)
        for k in tl.range(k_start, k_end, BK, num_stages=STAGES):
            a = a_desc.load([off_m, k])
            w = w_desc.load([off_n, k])
            acc = tl.dot(a, w.T, acc)
    offs_m = off_m + tl.arange(0, BM)
    offs_n = off_n + tl.arange(0, BN)
    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    y_mask = (offs_m < M)[:, None] & (offs_n < N)[None, :]
    if split_k == 1:
        tl.store(y_ptrs, acc.to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        squares = tl.zeros((BM,), dtype=tl.float32)
        _finish_split(acc, squares, y_ptrs, y_mask, partial_ptr, counter_ptr, K, 0.0, split_k, PLAIN, BM, BN)


def run(x, w, y, cfg, counters, partials, pdl):
    m, k = x.shape
    n = w.shape[0]
    a_desc = TensorDescriptor.from_tensor(x, [cfg["BM"], cfg["BK"]])
    w_desc = TensorDescriptor.from_tensor(w, [cfg["BN"], cfg["BK"]])
    split = cfg["split"]
    kps = triton.cdiv(k, cfg["BK"] * split) * cfg["BK"]
    grid = (triton.cdiv(n, cfg["BN"]), triton.cdiv(m, cfg["BM"]), split)
    extra = {"launch_pdl": True} if pdl else {}
    tma_gemm[grid](a_desc, w_desc, y, partials, counters, m, n, k, split, kps, y.stride(0),
                   BM=cfg["BM"], BN=cfg["BN"], BK=cfg["BK"], STAGES=cfg["stages"], USE_PDL=pdl,
                   EARLY=cfg.get("early", False), num_warps=cfg["warps"], num_stages=cfg["stages"], **extra)
    return y


def configs(rows, n, k):
    out = []
    bms = [64] if rows <= 64 else [64, 128]
    for bm, bn, bk, stages, warps, split in itertools.product(bms, (32, 64, 128), (64, 128), (3, 4, 6), (4, 8),
                                                               (1, 2, 4, 8)):
        if (bk == 64 and stages == 3) or (bk == 128 and stages == 6):
            continue
        smem = stages * 2 * bk * (bm + bn)
        if smem > 200 * 1024 or k < split * bk:
            continue
        tiles = triton.cdiv(rows, bm) * triton.cdiv(n, bn)
        if split > 1 and tiles * split > 4 * 132:
            continue
        if (warps == 8) != (bm * bn >= 128 * 128):
            continue
        out.append({"BM": bm, "BN": bn, "BK": bk, "stages": stages, "warps": warps, "split": split})
    return out


def main():
    rows_list = [int(r) for r in sys.argv[1].split(",")]
    out_path = sys.argv[2]
    results = []
    for name, (n, k) in PROJ.items():
        sets = num_sets(2 * n * k)
        gen = torch.Generator(device="cuda").manual_seed(0)
        weights = [(torch.randn(n, k, generator=gen, device="cuda") * k**-0.5).bfloat16() for _ in range(sets)]
        counters = new_split_counters("cuda")
        partials = torch.empty(4 << 20, dtype=torch.float32, device="cuda")
        for rows in rows_list:
            x = torch.randn(rows, k, generator=gen, device="cuda").bfloat16()
            y = torch.empty(rows, n, dtype=torch.bfloat16, device="cuda")
            moved = 2 * (n * k + x.numel() + rows * n)
            ref = F.linear(x, weights[0]).float()
            cublas = graph_ms([lambda w=w: F.linear(x, w) for w in weights], moved)
            timings = []
            for cfg in configs(rows, n, k):
                try:
                    got = run(x, weights[0], y, cfg, counters, partials, False).float()
                    if not torch.allclose(got, ref, rtol=2e-2, atol=2e-2):
                        print("MISMATCH", name, rows, cfg, flush=True)
                        continue
                    ms = graph_ms([lambda w=w: run(x, w, y, cfg, counters, partials, False) for w in weights], moved)
                    timings.append((ms, cfg))
                except Exception as e:  # noqa: BLE001 - exploration: skip configs that do not compile
                    print("SKIP", name, rows, cfg, type(e).__name__, str(e)[:80], flush=True)
            timings.sort(key=lambda t: t[0])
            pdl_rows = []
            for ms, cfg in timings[:3]:
                for early in (False, True):
                    c = dict(cfg, early=early)
                    pdl_ms = graph_ms([lambda w=w: run(x, w, y, c, counters, partials, True) for w in weights], moved)
                    pdl_rows.append((pdl_ms, c))
            pdl_rows.sort(key=lambda t: t[0])
            row = {"proj": name, "rows": rows, "cublas_us": cublas * 1e3, "best_us": timings[0][0] * 1e3,
                   "best": timings[0][1], "top": [(t * 1e3, c) for t, c in timings[:5]],
                   "pdl_us": pdl_rows[0][0] * 1e3, "pdl_best": pdl_rows[0][1],
                   "floor_us": moved / 3.0e12 * 1e6}
            results.append(row)
            print(f"{name:8s} {rows:4d} cublas {row['cublas_us']:6.2f}  tma {row['best_us']:6.2f} {row['best']}  "
                  f"pdl {row['pdl_us']:6.2f} {row['pdl_best']}", flush=True)
            with open(out_path, "w") as f:
                json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
