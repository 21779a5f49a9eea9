"""Launch configurations of the multi-row tensor-core GEMMs (allmos.linear.kernels.gemm): the tile
(block_m x block_n), the K chunk (block_k), the number of K slices (split_k), warps and pipeline stages."""

from __future__ import annotations

import triton

NUM_SMS_H100 = 132
PROGRAMS_PER_SM = 2  # a split-K grid's target size
CONFIG_KEYS = ("block_m", "block_n", "block_k", "split_k", "num_warps", "num_stages")
SHARED_MEMORY_BYTES = 227 * 1024  # per block on an H100


def default_config(rows: int, n: int, k: int) -> dict:
    """Measured on an H100 (allmos.microbench.gemm_bench, 2026-11-28, Qwen3-0.6B's projections at 2..32 rows):
    the fastest configs all had 16-row tiles, 32 (sometimes 64) output columns and 128-wide K chunks, and
    split K until the grid held about 256 programs (two per SM): qkv 2 slices, o and down 4-8, gate_up
    (192 tiles already) none. The rule below gives those."""
    block_m, block_n, block_k = min(64, max(16, triton.next_power_of_2(rows) // 2)), 32, 128
    tiles = triton.cdiv(rows, block_m) * triton.cdiv(n, block_n)
    split_k = 1
    while split_k < 8 and 2 * tiles * split_k <= PROGRAMS_PER_SM * NUM_SMS_H100 and k >= 2 * split_k * block_k:
        split_k *= 2
    return {
        "block_m": block_m,
        "block_n": block_n,
        "block_k": block_k,
        "split_k": split_k,
        "num_warps": 4,
        "num_stages": 3,
    }


def shared_memory_bytes(config: dict) -> int:
    """What the pipelined loop keeps in shared memory: num_stages input and weight chunks (2-byte)."""
    per_stage = 2 * config["block_k"] * (config["block_m"] + config["block_n"])
    return config["num_stages"] * per_stage


def resolve_config(name: str, rows: int, n: int, k: int, overrides: dict | None) -> dict:
    """default_config with the caller's values in place of any it gives; refused when a value is not a
    power of two (or, for split_k, not a positive count) or the tiles cannot be pipelined on an H100."""
    config = default_config(rows, n, k)
    for key, value in (overrides or {}).items():
        if key not in CONFIG_KEYS:
            raise ValueError(f"{name}: unknown config key {key!r} (expected one of {CONFIG_KEYS})")
        config[key] = value
    for key in ("block_m", "block_n", "block_k", "num_warps"):
        value = config[key]
        if value < 1 or value & (value - 1):
            raise ValueError(f"{name}: {key}={value} is not a power of two")
    if min(config["block_m"], config["block_n"], config["block_k"]) < 16:
        raise ValueError(f"{name}: tensor-core tiles need block_m, block_n and block_k of 16 or more ({config})")
    if config["split_k"] < 1 or config["num_stages"] < 1:
        raise ValueError(f"{name}: split_k and num_stages must be at least 1 ({config})")
    if shared_memory_bytes(config) > SHARED_MEMORY_BYTES:
        raise ValueError(f"{name}: {config} needs {shared_memory_bytes(config)} bytes of shared memory")
    return config
