"""kernel_bench's printed tables: decode GB/s (default, best of the sweep, SDPA, flash-attn), prefill
TFLOP/s, KV store GB/s."""

from __future__ import annotations

from allmos.microbench.gpu_timing import gbps


def print_decode_table(rows: list[dict]) -> None:
    print(
        "\npaged decode, GB/s (K/V + q + out bytes / median graph-replay time per call); "
        "sdpa_gather = gather to dense + SDPA;\nus = default (fused combine) us per call, "
        "2k_us = the same with the two-kernel combine"
    )
    header = (
        f"{'bs':>4} {'batch':>5} {'ctx':>5} | {'default':>8} {'best':>8} {'sdpa_gather':>11} "
        f"{'sdpa_only':>9} {'flash':>8} {'host_us':>7} | {'us':>6} {'2k_us':>6} | "
        "best splits/block_n/warps/stages vs default"
    )
    print(header)
    for r in rows:
        best = r.get("triton_best")
        best_gbps = f"{gbps(r['bytes'], best['ms']):8.0f}" if best else f"{'-':>8}"
        flash = f"{r['flash_attn_gbps']:8.0f}" if "flash_attn_gbps" in r else f"{'n/a':>8}"
        config = f"{best['num_splits']}/{best['block_n']}/{best['num_warps']}/{best['num_stages']}" if best else "-"
        two_kernel = f"{r['triton_two_kernel_ms'] * 1e3:6.2f}" if "triton_two_kernel_ms" in r else f"{'-':>6}"
        print(
            f"{r['block_size']:>4} {r['batch']:>5} {r['context']:>5} | {r['triton_default_gbps']:8.0f} "
            f"{best_gbps} {r['torch_sdpa_gather_gbps']:11.0f} {r['torch_sdpa_dense_only_gbps']:9.0f} "
            f"{flash} {r['triton_default_host_us']:7.1f} | {r['triton_default_ms'] * 1e3:6.2f} {two_kernel} | "
            f"{config} vs {r['default_num_splits']}"
        )


def print_store_table(rows: list[dict]) -> None:
    print("\nKV store, GB/s (k and v read + written)")
    print(f"{'tokens':>7} | {'triton':>8} {'torch':>8} | {'triton us':>9} {'torch us':>9}")
    for r in rows:
        print(
            f"{r['num_tokens']:>7} | {r['triton_gbps']:8.0f} {r['torch_index_put_gbps']:8.0f} | "
            f"{r['triton_ms'] * 1e3:9.1f} {r['torch_index_put_ms'] * 1e3:9.1f}"
        )


def print_prefill_table(rows: list[dict]) -> None:
    print("\npaged prefill, TFLOP/s (causal pairs x 4 x head_dim x heads / median time)")
    print(
        f"{'bs':>4} {'seqs':>4} {'q_len':>5} {'ctx':>5} | {'default':>7} {'best':>7} {'sdpa':>7} | "
        f"best (block_m/block_n/warps/stages)"
    )
    for r in rows:
        best = r.get("triton_best")
        best_tf = f"{r['flops'] / (best['ms'] * 1e-3) / 1e12:7.0f}" if best else f"{'-':>7}"
        sdpa_tf = (
            f"{r['torch_sdpa_dense_causal_tflops']:7.0f}" if "torch_sdpa_dense_causal_tflops" in r else f"{'n/a':>7}"
        )
        keys = ("block_m", "block_n", "num_warps", "num_stages")
        config = "/".join(str(best[k]) for k in keys) if best else "-"
        print(
            f"{r['block_size']:>4} {r['seqs']:>4} {r['q_len']:>5} {r['context']:>5} | "
            f"{r['triton_default_tflops']:7.0f} {best_tf} {sdpa_tf} | {config}"
        )
