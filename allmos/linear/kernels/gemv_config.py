"""Launch configurations of the one-row and few-row GEMVs (allmos.linear.kernels.gemv): output columns per
program (block_n), the K chunk (block_k) and warps, within a thread's register budget for the accumulator."""

from __future__ import annotations

import triton

MAX_ACCUMULATORS_PER_THREAD = 64  # float32 registers a thread gives to the accumulator tile
NUM_SMS_H100 = 132


def default_config(rows: int, n: int, k: int) -> dict:
    """At one row, measured on an H100 as a decode layer's chain of kernels under PDL, each projection's config
    varied in turn (allmos.microbench.layer_chain --sweep, 2026-12-06; 20.6 -> 17.9 us per layer):
      * rows longer than 2048 (down, K=3072): a whole row per chunk (block_k 4096, masked) with 16 warps
        and block_n 4, so that every weight load of a program is issued before the PDL wait (0.95x);
      * K up to 1024 and N up to 4096 (qkv): block_n 8, which keeps the launch within one wave of resident
        programs (2 -> 8: 0.93x);
      * the rest (o, gate_up, and the LM head's long stream) as measured one kernel at a time
        (linear_bench, 2026-11-28): block_n 2 with whole 1024-wide K chunks, or 2048-wide ones for o.
    More rows shrink block_k so that the accumulator tile keeps its register budget (not tuned)."""
    if rows == 1:
        if k > 2048:
            return {"block_n": 4, "block_k": triton.next_power_of_2(k), "num_warps": 16}
        if k <= 1024 and n <= 4096:
            return {"block_n": 8, "block_k": 1024, "num_warps": 4}
        return {"block_n": 2, "block_k": 2048 if k >= 2048 and n <= 2048 else 1024, "num_warps": 4}
    block_n = 8 if n >= 2 * NUM_SMS_H100 * 8 else 4
    block_k = max(64, 512 // triton.next_power_of_2(rows))
    return {"block_n": block_n, "block_k": block_k, "num_warps": 4}


def accumulator_fits(rows: int, block_n: int, block_k: int, num_warps: int) -> bool:
    """Whether the [rows, block_n, block_k] float32 accumulator tile fits a thread's register budget."""
    tile = triton.next_power_of_2(rows) * block_n * block_k
    return tile <= MAX_ACCUMULATORS_PER_THREAD * 32 * num_warps


def launch_config(name: str, rows: int, n: int, k: int, block_n, block_k, num_warps) -> dict:
    """default_config with the caller's values in place of any it gives, its K chunk shrunk to fit the
    register budget when the caller gave none; refused when a value is not a power of two or the tile does
    not fit. Returns the grid and the kernel's launch constants."""
    config = default_config(rows, n, k)
    for key, value in (("block_n", block_n), ("block_k", block_k), ("num_warps", num_warps)):
        if value is not None:
            if value < 1 or value & (value - 1):
                raise ValueError(f"{name}: {key}={value} is not a power of two")
            config[key] = value
    config["block_k"] = min(config["block_k"], triton.next_power_of_2(k))
    while block_k is None and config["block_k"] > 64 and not accumulator_fits(rows, **config):
        config["block_k"] //= 2  # a default chunk shrinks to fit wider block_n given alone
    if not accumulator_fits(rows, **config):
        raise ValueError(f"{name}: the accumulator tile of {rows} rows x {config} exceeds the register budget")
    return {
        "grid": (triton.cdiv(n, config["block_n"]),),
        "BLOCK_M": triton.next_power_of_2(rows),
        "BLOCK_N": config["block_n"],
        "BLOCK_K": config["block_k"],
        "num_warps": config["num_warps"],
    }
