"""The decode kernel's launch shape from host-known sizes: splits per (sequence, kv head) and the tile."""

from __future__ import annotations

import torch
import triton

_H100_NUM_SMS = 132
_MAX_SPLITS = 32
_MIN_TOKENS_PER_SPLIT = 64
# KV tokens per inner iteration (default_block_n). Tiles may span several pages (page looked up per
# token), so the tile is independent of block_size.
_SMALL_BLOCK_N = 64
_LARGE_BLOCK_N = 128
# The decode kernel's Triton num_stages for one and for two K/V buffers a program (stages_for_kv_buffers):
# Triton 3.3-3.4 give a second buffer at 3 stages (and 4 buffers at 5); Triton 3.5-3.6 spend stages 3 and 4
# on the block-table load and give it at 5 (allmos.microbench.kernel_resources on sm_90, 2026-12-07).
_STAGES_FOR_KV_BUFFERS = {"3.5": (2, 5), "older": (2, 3)}
# Registers per thread of the FP8 decode kernel: 3 programs of 4 warps per SM without spilling (sm_90).
FP8_MAX_REGISTERS = 168


def _num_sms(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return _H100_NUM_SMS


def default_num_splits(batch: int, num_kv_heads: int, max_context: int, num_sms: int = _H100_NUM_SMS) -> int:
    """Splits per (sequence, kv head): enough programs to fill the GPU twice, each split >= 64 tokens.

    Only host-known shapes are used (max_context comes from block_tables' width), so the choice is fixed
    for a CUDA graph; the kernel spreads each sequence's actual tiles over the splits, so a generous
    max_context only adds a few empty programs. Tuned on an H100 (bf16, 8 kv heads, head_dim 128): within
    1% of the best power-of-two split count on every shape of allmos.microbench.kernel_bench.
    """
    programs = batch * num_kv_heads
    wanted = triton.next_power_of_2(triton.cdiv(2 * num_sms, max(programs, 1)))
    useful = triton.cdiv(max(max_context, 1), _MIN_TOKENS_PER_SPLIT)
    return max(1, min(wanted, useful, _MAX_SPLITS))


def default_block_n(batch: int, num_kv_heads: int, num_sms: int = _H100_NUM_SMS) -> int:
    """128-token tiles once the launch has a program per (kv head, sequence) for every SM, 64 below.
    Measured on an H100 (bf16, 8 kv heads, head_dim 128, block size 256; allmos.microbench.kv_read_probe and
    nano_bench, 2026-11-28): over scattered pages and mixed contexts the 64-token tile was up to 15% faster
    at batch 1-16, and from batch 32 the two were within 3% of each other, 128 ahead by 2-5% at 2k
    contexts; over consecutive pages (as a fresh engine hands them out) 128 read 7% faster at batch 102,
    and nano_bench everything on went from 20,166 and 20,397 to 20,573 and 20,600 output tok/s."""
    return _LARGE_BLOCK_N if batch * num_kv_heads >= num_sms else _SMALL_BLOCK_N


def default_max_registers(fp8: bool) -> int | None:
    """The cap on the decode kernel's registers per thread (ptx .maxnreg), None for the compiler's choice.
    Uncapped, the FP8 kernel takes 199 registers at 128-token tiles (batch 17 and up), so 2 programs fit an
    SM against 3 of the bf16 kernel; at 168 it spills nothing and 3 fit (allmos.microbench.kernel_resources),
    and at 64-token tiles it takes 168 anyway. The bf16 kernels (124-137 registers) are left alone."""
    return FP8_MAX_REGISTERS if fp8 else None


def _major_minor(version: str) -> tuple[int, int]:
    major, minor = (int(part) for part in version.split(".")[:2])
    return major, minor


_INSTALLED_TRITON = _major_minor(triton.__version__)  # parsed once: the decode launch asks at every call


def stages_for_kv_buffers(kv_buffers: int, triton_version: str | None = None) -> int:
    """The decode kernel's Triton num_stages that gives each program `kv_buffers` (1 or 2) shared-memory buffers
    for K/V tiles. With one, a tile's copy is issued only once the previous tile is consumed; with two, the
    next tile's copy runs while the current one is computed on."""
    if kv_buffers not in (1, 2):
        raise ValueError(f"kv_buffers must be 1 or 2; got {kv_buffers}")
    version = _INSTALLED_TRITON if triton_version is None else _major_minor(triton_version)
    stages = _STAGES_FOR_KV_BUFFERS["3.5" if version >= (3, 5) else "older"]
    return stages[kv_buffers - 1]


def default_kv_buffers(fp8: bool, capability: tuple[int, int] | None) -> int:
    """K/V buffers a decode program holds by default (capability: the device's compute capability, None off
    CUDA): one. With one buffer the FP8 decode's 32 KB tiles leave half the bf16 kernel's bytes in flight at
    3 programs an SM, and two buffers fit 3 programs too on Hopper; but on an H100 two made the FP8 kernel
    alone only 1-7% faster and nano_bench with FP8 pages 1.6% slower (docs/results/2026-12-07-h100-session20)."""
    return 1


def default_num_stages(fp8: bool, capability: tuple[int, int] | None) -> int:
    return stages_for_kv_buffers(default_kv_buffers(fp8, capability))


def compute_capability(device: torch.device) -> tuple[int, int] | None:
    return torch.cuda.get_device_capability(device) if device.type == "cuda" else None
