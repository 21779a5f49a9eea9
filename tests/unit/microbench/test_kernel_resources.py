"""kernel_resources compiles the decode hot path's Triton kernels for sm_90 on the CPU and reads their
registers and spills from the cubin (the CUDA tools bundled with Triton); programs per SM follow the
sm_90 limits."""

import re

import pytest

pytest.importorskip("triton")
from allmos.attention.kernels.decode_heuristics import FP8_MAX_REGISTERS, default_kv_buffers, stages_for_kv_buffers
from allmos.microbench import kernel_resources as kr


@pytest.mark.parametrize(
    "registers,num_warps,shared,expected",
    [
        (63, 4, 4096, 8),  # 64 registers x 128 threads: 8 programs fill the register file
        (38, 4, 4096, 12),  # 40 after rounding to the allocation unit
        (199, 4, 41984, 2),  # the FP8 decode at 128-token tiles
        (168, 4, 41984, 3),  # ... capped at 168 registers
        (124, 4, 73728, 3),  # shared memory allows 3 (228 KB over 73 KB + 1 KB each)
        (46, 16, 16384, 2),  # 16 warps: 1536 registers a warp, 42 warps, 2 programs
        (16, 1, 0, 32),  # the program count is the limit
    ],
)
def test_programs_per_sm_follow_the_sm90_limits(registers, num_warps, shared, expected):
    assert kr.programs_per_sm(registers, num_warps, shared) == expected


def test_the_default_batch1_gemvs_do_not_spill_and_qkv_fits_one_wave():
    rows = {row["kernel"]: row for row in kr.gemv_rows(sweep=False)}
    assert set(rows) == set(kr.GEMVS)
    for row in rows.values():
        assert row["spill_bytes"] == 0 and 0 < row["registers"] <= 255 and row["programs_per_sm"] >= 1
    qkv = rows["norm+qkv"]
    assert qkv["grid"] == 4096 // qkv["config"]["block_n"] and qkv["waves"] <= 1


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16_pages", "fp8_pages"])
def test_the_rope_epilogue_keeps_qkv_in_one_wave_without_spilling(fp8):
    """rope.fuse_qkv adds the epilogue's registers to norm+qkv (72 -> 94 on 2026-12-06: 7 -> 5 programs per
    SM); its 512 programs must still be resident at once, so that each loads its weights before the PDL wait."""
    plain = kr.gemv_row("norm+qkv", kr.default_config(1, *kr.GEMVS["norm+qkv"][1:]))
    row = kr.qkv_rope_row(fp8)
    assert row["spill_bytes"] == 0 and row["registers"] >= plain["registers"]
    assert row["grid"] == plain["grid"] and row["waves"] <= 1


def test_the_fp8_decode_is_capped_by_default_and_fits_3_programs_per_sm_without_spilling():
    capped = kr.decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False)
    assert capped["config"]["max_registers"] == FP8_MAX_REGISTERS and capped["registers"] <= FP8_MAX_REGISTERS
    assert capped["programs_per_sm"] >= 3 and capped["spill_bytes"] == 0
    uncapped = kr.decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, max_registers=0)
    assert uncapped["config"]["max_registers"] == "none" and uncapped["registers"] > FP8_MAX_REGISTERS


def test_the_fp8_decode_holds_the_k_v_buffers_asked_for_at_3_programs_per_sm():
    """attention.decode_kv_buffers maps to Triton stages by version: Triton 3.5+ spends stages 3 and 4 on the
    block-table load that the K/V copies hang off, so its second buffer comes at 5 stages (3.3-3.4: at 3). Two
    buffers still fit 3 programs per SM at the default register cap, without spilling."""
    rows = {
        b: kr.decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, num_stages=stages_for_kv_buffers(b))
        for b in (1, 2)
    }
    assert [rows[b]["kv_buffers"] for b in (1, 2)] == [1, 2]
    assert rows[2]["shared_bytes"] >= 2 * 2 * 128 * 128
    assert rows[2]["programs_per_sm"] == 3 and rows[2]["spill_bytes"] == 0
    default = kr.decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False)
    assert default["kv_buffers"] == default_kv_buffers(True, kr.SM90_CAPABILITY)


def test_dim_major_v_pages_take_the_fp8_decodes_byte_loads_out():
    """sm_90 has no 8-bit transposing shared-memory load, so FP8 V pages stored token-major reach the PV
    product byte by byte (V's tokens are that product's reduction dimension). Stored dim-major, V's tiles are
    contiguous along the tokens: copied asynchronously, read with ldmatrix, in fewer registers."""
    token_major, _ = kr.compile_decode(256, 128, 1, fp8=True, fuse_rope=False, max_registers=0)
    dim_major, _ = kr.compile_decode(256, 128, 1, fp8=True, fuse_rope=False, max_registers=0, v_dim_major=True)
    byte_loads = [len(re.findall(r"ld\.shared\.[bsu]8", c.asm["ptx"])) for c in (token_major, dim_major)]
    assert byte_loads[0] >= 64 and byte_loads[1] == 0, byte_loads
    assert kr.resources(dim_major, 4)["registers"] < kr.resources(token_major, 4)["registers"]
    assert kr.resources(dim_major, 4)["spill_bytes"] == 0
