"""Registers, spills, shared memory and resident programs per SM of the decode hot path's Triton kernels,
compiled for an H100/H200 (sm_90) on the CPU: no GPU needed.

    python -m allmos.microbench.kernel_resources [--sweep] [--out FILE]

Rows: the batch-1 GEMVs of Qwen3-0.6B (norm+qkv, o, norm+gate_up, SiLU+down, norm+LM head) with their
default launch configs; norm+qkv with the rope epilogue (rope.fuse_qkv) storing into bf16 and fp8 pages; and
the decode attention kernel as the engine launches it at batch 1 (64-token tiles, 32 splits, fused merge, KV
prefetch; also with attention.fuse_rope) and at batch 256 (128-token tiles, one split), in bf16 and fp8 (at
its default cap of 168 registers, attention.decode_max_registers, and uncapped).
`--sweep` adds every GEMV config layer_chain sweeps.

Each kernel is compiled with the specialization the JIT gives it at those shapes: integer arguments equal
to 1 become constants, the others divisible by 16 (and every pointer) carry that alignment. Without it the
compiler cannot vectorize the loads, and the register counts are those of another kernel. Registers and
spill bytes come from `cuobjdump --dump-resource-usage` on the cubin (the CUDA tools bundled with Triton).
Programs per SM follow the sm_90 limits: 64K registers allocated per warp in units of 256, 64 warps,
32 programs and 228 KB of shared memory (1 KB of it reserved per program). A launch's waves are its
programs over 132 SMs' resident programs: above 1, the last programs start only when earlier ones end, and
a PDL successor cannot become resident (and load its weights) until then.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import subprocess
import tempfile

import triton
import triton.backends.nvidia as nvidia_backend
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from allmos.attention.kernels.decode_heuristics import default_max_registers, default_num_stages
from allmos.linear.kernels import gemv_kernel, gemv_rope
from allmos.linear.kernels.gemv_config import accumulator_fits, default_config

SM90 = GPUTarget("cuda", 90, 32)
SM90_CAPABILITY = (9, 0)
NUM_SMS = 132  # H100 SXM and H200
REGISTERS_PER_SM, REGISTER_UNIT, MAX_WARPS, MAX_PROGRAMS = 65536, 256, 64, 32
SHARED_PER_SM, SHARED_RESERVED = 228 * 1024, 1024
HIDDEN, HEAD_DIM, NUM_HEADS, NUM_KV_HEADS, BLOCK_SIZE = 1024, 128, 16, 8, 256
GEMVS = {  # name: (kernel, out_features, in_features)
    "norm+qkv": ("add_rms_norm", 4096, HIDDEN),
    "o": ("plain", HIDDEN, 2048),
    "norm+gate_up": ("add_rms_norm", 6144, HIDDEN),
    "silu+down": ("silu_mul", HIDDEN, 3072),
    "norm+lm_head": ("add_rms_norm", 151936, HIDDEN),
}
SWEEP = [
    {"block_n": n, "block_k": k, "num_warps": w}
    for w in (4, 8, 16)
    for n in (2, 4, 8, 16)
    for k in (1024, 2048, 4096)
    if n * k >= 1024 * w
]


def cuobjdump() -> str:
    path = os.path.join(os.path.dirname(nvidia_backend.__file__), "bin", "cuobjdump")
    if not os.path.exists(path):
        raise SystemExit(f"kernel_resources: no cuobjdump in this Triton install ({path})")
    return path


def compile_sm90(
    fn, values: dict, constexprs: dict, pointers: dict, num_warps: int, num_stages: int = 3, max_registers=None
):
    """Compile fn for sm_90 as the JIT would specialize it: `values` are the runtime scalars, `pointers`
    the pointer arguments' types (all 16-byte aligned, as torch allocates); max_registers is ptx .maxnreg."""
    do_not_specialize = {fn.arg_names[i] if isinstance(i, int) else i for i in fn.do_not_specialize}
    signature, constants, attrs = {}, dict(constexprs), {}
    for name in fn.arg_names:
        value = values.get(name)
        if name in constants:
            signature[name] = "constexpr"
        elif name in pointers:
            signature[name] = pointers[name]
            attrs[(fn.arg_names.index(name),)] = [["tt.divisibility", 16]]
        elif isinstance(value, float):
            signature[name] = "fp32"
        elif value == 1 and name not in do_not_specialize:
            signature[name], constants[name] = "constexpr", 1
        else:
            signature[name] = "i32"
            if value % 16 == 0 and name not in do_not_specialize:
                attrs[(fn.arg_names.index(name),)] = [["tt.divisibility", 16]]
    indexed = {(fn.arg_names.index(name),): value for name, value in constants.items()}
    source = ASTSource(fn=fn, signature=signature, constexprs=indexed, attrs=attrs)
    options = {"num_warps": num_warps, "num_stages": num_stages}
    if max_registers is not None:
        options["maxnreg"] = max_registers
    return triton.compile(source, target=SM90, options=options)


def resources(compiled, num_warps: int) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".cubin") as cubin:
        cubin.write(compiled.asm["cubin"])
        cubin.flush()
        usage = subprocess.run([cuobjdump(), "--dump-resource-usage", cubin.name], capture_output=True, text=True)
    registers = int(re.search(r"REG:(\d+)", usage.stdout).group(1))
    spill = int(re.search(r"STACK:(\d+)", usage.stdout).group(1))
    shared = compiled.metadata.shared
    return {
        "registers": registers,
        "spill_bytes": spill,
        "shared_bytes": shared,
        "num_warps": num_warps,
        "programs_per_sm": programs_per_sm(registers, num_warps, shared),
    }


def programs_per_sm(registers: int, num_warps: int, shared_bytes: int) -> int:
    """Programs of one kernel an sm_90 SM holds at once, by registers, warps, program count and shared memory."""
    per_warp = math.ceil(registers * 32 / REGISTER_UNIT) * REGISTER_UNIT
    by_registers = (REGISTERS_PER_SM // per_warp) // num_warps
    by_shared = SHARED_PER_SM // (shared_bytes + SHARED_RESERVED)
    return min(by_registers, MAX_WARPS // num_warps, MAX_PROGRAMS, by_shared)


def gemv_row(name: str, config: dict) -> dict:
    kind, n, k = GEMVS[name]
    pointers = dict.fromkeys(("x_ptr", "r_ptr", "norm_w_ptr", "w_ptr", "y_ptr", "new_r_ptr", "gate_up_ptr"), "*bf16")
    values = {"M": 1, "N": n, "eps": 1e-6, "stride_wn": k, "stride_ym": n, "stride_gm": 2 * k}
    values |= dict.fromkeys(("stride_xm", "stride_rm", "stride_new_rm"), k)
    kernel = {
        "plain": gemv_kernel._skinny_linear_kernel,
        "add_rms_norm": gemv_kernel._add_rms_norm_linear_kernel,
        "silu_mul": gemv_kernel._silu_mul_linear_kernel,
    }[kind]
    block_k = min(config["block_k"], triton.next_power_of_2(k))
    constexprs = {"K": k, "BLOCK_M": 1, "BLOCK_N": config["block_n"], "BLOCK_K": block_k, "USE_PDL": True}
    if kind == "add_rms_norm":
        constexprs["HAS_RESIDUAL"] = True
    compiled = compile_sm90(kernel, values, constexprs, pointers, config["num_warps"])
    row = {"kernel": name, "config": {**config, "block_k": block_k}, **resources(compiled, config["num_warps"])}
    return with_waves(row, triton.cdiv(n, config["block_n"]))


def qkv_rope_row(fp8: bool) -> dict:
    """norm+qkv with the rope epilogue (allmos.linear.kernels.gemv_rope) at its default config, q/k norms on,
    storing K/V into the pages (fp8: quantized, per-token scales)."""
    _, n, k = GEMVS["norm+qkv"]
    config = default_config(1, n, k)
    pages = "*fp8e4nv" if fp8 else "*bf16"
    pointers = dict.fromkeys(("x_ptr", "r_ptr", "norm_w_ptr", "w_ptr", "bias_ptr", "y_ptr", "new_r_ptr"), "*bf16")
    pointers |= {"q_norm_ptr": "*bf16", "k_norm_ptr": "*bf16", "k_cache_ptr": pages, "v_cache_ptr": pages}
    pointers |= {"counters_ptr": "*i32", "positions_ptr": "*i64", "slot_mapping_ptr": "*i64", "cos_ptr": "*fp32"}
    pointers |= {"sin_ptr": "*fp32", "k_scale_ptr": "*fp32", "v_scale_ptr": "*fp32"}
    values = {"N": n, "eps": 1e-6, "stride_wn": k, "norm_eps": 1e-6, "fixed_scale": 0.0, "block_size": BLOCK_SIZE}
    values |= dict.fromkeys(("stride_xm", "stride_rm", "stride_new_rm"), k)
    constexprs = {"K": k, "HAS_RESIDUAL": True, "HAS_BIAS": False, "NUM_HEADS": NUM_HEADS, "NUM_KV_HEADS": NUM_KV_HEADS}
    constexprs |= {"HALF": HEAD_DIM // 2, "HAS_NORM": True, "STORE_KV": True, "QUANT": fp8, "DYNAMIC": fp8}
    constexprs |= {"BLOCK_M": 1, "BLOCK_N": config["block_n"], "BLOCK_K": config["block_k"], "USE_PDL": True}
    compiled = compile_sm90(gemv_rope._add_rms_norm_qkv_rope_kernel, values, constexprs, pointers, config["num_warps"])
    label = "norm+qkv+rope" + ("/fp8" if fp8 else "")
    row = {"kernel": label, "config": config, **resources(compiled, config["num_warps"])}
    return with_waves(row, triton.cdiv(n, config["block_n"]))


def compile_decode(
    batch: int,
    block_n: int,
    num_splits: int,
    fp8: bool,
    fuse_rope: bool,
    max_registers=None,
    v_dim_major: bool = False,
    num_stages=None,
):
    """The decode kernel compiled as the engine launches it at that batch and launch (v_dim_major: V pages
    stored [H, D, block_size] per page; num_stages None: default_num_stages), and the register cap it was
    compiled with."""
    from allmos.attention.kernels import decode

    cache = "*fp8e4nv" if fp8 else "*bf16"
    pointers = dict.fromkeys(("q_ptr", "out_ptr", "new_k_ptr", "new_v_ptr", "q_norm_ptr", "k_norm_ptr"), "*bf16")
    pointers |= {"k_cache_ptr": cache, "v_cache_ptr": cache, "k_scale_ptr": "*fp32", "v_scale_ptr": "*fp32"}
    pointers |= {"block_tables_ptr": "*i32", "context_lens_ptr": "*i32", "seq_order_ptr": "*i64"}
    pointers |= {"partial_out_ptr": "*fp32", "partial_lse_ptr": "*fp32", "counters_ptr": "*i32"}
    pointers |= {"positions_ptr": "*i64", "slot_mapping_ptr": "*i64", "cos_ptr": "*fp32", "sin_ptr": "*fp32"}
    kv_row = NUM_KV_HEADS * HEAD_DIM
    values = {"eps": 1e-6, "qk_scale": 0.127, "num_splits": num_splits, "stride_qb": 4096, "stride_qh": HEAD_DIM}
    values |= dict.fromkeys(("stride_kp", "stride_vp"), BLOCK_SIZE * kv_row)
    values |= dict.fromkeys(("stride_kt", "stride_vt", "stride_nkb", "stride_nvb"), kv_row)
    values |= dict.fromkeys(("stride_kh", "stride_vh", "stride_nkh", "stride_nvh", "stride_oh"), HEAD_DIM)
    values |= {"stride_btb": 16, "stride_ob": NUM_HEADS * HEAD_DIM, "stride_sp": kv_row * 2, "stride_sh": BLOCK_SIZE}
    # V pages token-major (the JIT makes a stride of 1 a constant), or stored [H, D, block_size] per page
    values |= {"stride_vt": 1, "stride_vd": BLOCK_SIZE, "stride_vh": HEAD_DIM * BLOCK_SIZE} if v_dim_major else {}
    values.setdefault("stride_vd", 1)
    group = NUM_HEADS // NUM_KV_HEADS
    splits_pad = triton.next_power_of_2(num_splits)
    fused = num_splits > 1
    constexprs = {"GROUP": group, "GROUP_PAD": 16, "HEAD_DIM": HEAD_DIM, "BLOCK_SIZE": BLOCK_SIZE, "BLOCK_N": block_n}
    constexprs |= {"DIRECT_OUT": not fused, "ORDERED": True, "FUSED_COMBINE": fused, "USE_PDL": True, "FP8": fp8}
    constexprs["V_DIM_MAJOR"] = v_dim_major
    constexprs |= {"HEADS_PER_MERGE": decode._heads_per_merge(group, splits_pad, HEAD_DIM) if fused else 1}
    constexprs |= {"SPLITS_PAD": splits_pad if fused else 1, "PREFETCH": block_n <= 64}
    constexprs |= {"FUSE_ROPE": fuse_rope, "HAS_NORM": fuse_rope}
    if max_registers is None:
        max_registers = default_max_registers(fp8)
    num_stages = num_stages or default_num_stages(fp8, SM90_CAPABILITY)
    launch = {"num_warps": 4, "num_stages": num_stages, "max_registers": max_registers or None}
    return compile_sm90(decode._decode_split_kernel, values, constexprs, pointers, **launch), max_registers


def kv_buffers(compiled, block_n: int) -> int:
    """Shared-memory buffers the decode kernel's tile loop holds for K tiles (Triton's pipeliner allocates one
    per tile it can have in flight): 1 means a tile's copy starts only once the previous tile is consumed."""
    found = re.findall(rf"local_alloc : \(\) -> !ttg\.memdesc<(\d+)x{block_n}x{HEAD_DIM}x", compiled.asm["ttgir"])
    return int(found[0]) if found else 0


def decode_row(label: str, batch: int, block_n: int, num_splits: int, **options) -> dict:
    """compile_decode's kernel (options: fp8, fuse_rope, max_registers, v_dim_major, num_stages) as a table row,
    with its K/V buffers per program."""
    compiled, max_registers = compile_decode(batch, block_n, num_splits, **options)
    config = {"batch": batch, "block_n": block_n, "num_splits": num_splits}
    config |= {"fp8": options["fp8"], "fuse_rope": options["fuse_rope"]}
    config |= {"v_dim_major": True} if options.get("v_dim_major") else {}
    config["max_registers"] = max_registers or "none"
    config["num_stages"] = options.get("num_stages") or default_num_stages(options["fp8"], SM90_CAPABILITY)
    row = {"kernel": label, "config": config, **resources(compiled, 4), "kv_buffers": kv_buffers(compiled, block_n)}
    return with_waves(row, NUM_KV_HEADS * batch * num_splits)


def with_waves(row: dict, grid: int) -> dict:
    return {**row, "grid": grid, "waves": grid / (NUM_SMS * row["programs_per_sm"])}


def decode_rows() -> list[dict]:
    return [
        decode_row("decode", 1, 64, 32, fp8=False, fuse_rope=False),
        decode_row("decode", 1, 64, 32, fp8=True, fuse_rope=False),
        decode_row("decode+rope", 1, 64, 32, fp8=False, fuse_rope=True),
        decode_row("decode", 256, 128, 1, fp8=False, fuse_rope=False),
        decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, max_registers=0),
        decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False),
        decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, num_stages=2),
        decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, num_stages=5),
        decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, v_dim_major=True),
        decode_row("decode", 256, 128, 1, fp8=True, fuse_rope=False, max_registers=0, v_dim_major=True),
    ]


def gemv_rows(sweep: bool) -> list[dict]:
    rows = []
    for name, (_, n, k) in GEMVS.items():
        configs = [default_config(1, n, k)]
        if sweep:
            configs += [c for c in SWEEP if c != configs[0] and accumulator_fits(1, **c) and n // c["block_n"] >= 32]
        rows += [gemv_row(name, config) for config in configs]
    return rows


def print_rows(rows: list[dict]) -> None:
    header = f"{'kernel':14s} {'config':100s} {'regs':>4s} {'spill':>5s} {'smem':>6s} {'/SM':>3s} {'grid':>6s}"
    print(header + " waves kv_bufs")
    for r in rows:
        config = " ".join(f"{key}={value}" for key, value in {"num_warps": r["num_warps"], **r["config"]}.items())
        print(
            f"{r['kernel']:14s} {config:100s} {r['registers']:4d} {r['spill_bytes']:5d} {r['shared_bytes']:6d} "
            f"{r['programs_per_sm']:3d} {r['grid']:6d} {r['waves']:5.2f} {r.get('kv_buffers', '-'):>7}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", action="store_true", help="every GEMV config layer_chain sweeps, not just defaults")
    parser.add_argument("--out", help="a JSON file for the rows")
    args = parser.parse_args()
    rows = gemv_rows(args.sweep) + [qkv_rope_row(fp8=False), qkv_rope_row(fp8=True)] + decode_rows()
    print_rows(rows)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
