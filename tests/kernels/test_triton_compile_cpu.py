"""Compile Triton kernels for an H100 (sm_90) without a GPU: what the interpreter lets through but the
compiler refuses (e.g. a kernel reading a non-constexpr module global) fails here, before a device call.
Uses the ptxas bundled with the triton wheel."""

import re

import pytest

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

H100 = GPUTarget("cuda", 90, 32)


def compile_for_h100(fn, types: dict[str, str], constexprs: dict[str, object]):
    signature = {name: types.get(name, "constexpr") for name in fn.arg_names}
    indexed = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=indexed), target=H100)


def test_sampler_kernels_compile_for_h100():
    from allmos.sampling.kernels import gumbel_max as k

    chunk_types = {"logits_ptr": "*bf16", "temperatures_ptr": "*fp32", "best_score_ptr": "*fp32"}
    chunk_types |= {"best_token_ptr": "*i32", "seed_ptr": "*i64"}
    chunk_types |= dict.fromkeys(("vocab", "stride_row", "chunk_len"), "i32")
    chunk_types["num_chunks"] = "i32"
    fast = compile_for_h100(k._chunk_best_kernel, chunk_types, {"BLOCK": 1024, "FAST_LOG": True}).asm
    assert "cubin" in fast and "lg2.approx.f32" in fast["ptx"]
    accurate = compile_for_h100(k._chunk_best_kernel, chunk_types, {"BLOCK": 1024, "FAST_LOG": False}).asm
    assert "cubin" in accurate and "lg2.approx" not in accurate["ptx"]
    row_types = {"best_score_ptr": "*fp32", "best_token_ptr": "*i32", "tokens_ptr": "*i64", "num_chunks": "i32"}
    assert "cubin" in compile_for_h100(k._row_best_kernel, row_types, {"CHUNKS_PAD": 256}).asm


FP8_SCALES = {"k_scale_ptr": "*fp32", "v_scale_ptr": "*fp32"}


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("store_kv,fp8", [(False, False), (True, False), (True, True)], ids=["rope", "kv", "kv_fp8"])
def test_qk_rope_kernel_compiles_for_h100(store_kv, fp8, pdl):
    from allmos.rope.kernels import qk_rope as k

    pointers = (
        "positions_ptr",
        "q_ptr",
        "k_ptr",
        "q_weight_ptr",
        "k_weight_ptr",
        "v_ptr",
        "k_cache_ptr",
        "v_cache_ptr",
    )
    types = dict.fromkeys(pointers, "*bf16") | {"positions_ptr": "*i64", "slot_mapping_ptr": "*i64"}
    types |= {"cos_ptr": "*fp32", "sin_ptr": "*fp32", "eps": "fp32"}
    types |= dict.fromkeys(("stride_q_tok", "stride_q_head", "stride_k_tok", "stride_k_head"), "i32")
    types |= dict.fromkeys(("stride_v_tok", "stride_v_head", "block_size"), "i32")
    types |= FP8_SCALES | {"fixed_scale": "fp32"}
    if fp8:
        types |= {"k_cache_ptr": "*fp8e4nv", "v_cache_ptr": "*fp8e4nv"}
    constexprs = {"NUM_HEADS": 16, "NUM_KV_HEADS": 8, "HALF": 64, "BLOCK_H": 16, "BLOCK_KV": 8}
    constexprs |= {"HAS_NORM": True, "STORE_KV": store_kv, "USE_PDL": pdl, "QUANT": fp8, "DYNAMIC": fp8}
    compiled = compile_for_h100(k._qk_norm_rope_kernel, types, constexprs)
    assert "cubin" in compiled.asm and ("griddepcontrol.wait" in compiled.asm["ptx"]) == pdl
    assert ("e4m3" in compiled.asm["ptx"]) == fp8  # the float32 -> e4m3 conversion


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16", "fp8"])
def test_kv_store_kernel_compiles_for_h100(fp8):
    from allmos.kv_store.kernels import store as k

    cache = "*fp8e4nv" if fp8 else "*bf16"
    types = {"k_ptr": "*bf16", "v_ptr": "*bf16", "k_cache_ptr": cache, "v_cache_ptr": cache, "slot_mapping_ptr": "*i64"}
    types |= FP8_SCALES | {"fixed_scale": "fp32", "block_size": "i32"}
    types |= dict.fromkeys(("stride_k_tok", "stride_k_head", "stride_v_tok", "stride_v_head"), "i32")
    constexprs = {"NUM_KV_HEADS": 8, "HEAD_DIM": 128, "BLOCK_H": 8, "BLOCK_D": 128, "QUANT": fp8, "DYNAMIC": fp8}
    compiled = compile_for_h100(k._store_kv_kernel, types, constexprs)
    assert "cubin" in compiled.asm and ("e4m3" in compiled.asm["ptx"]) == fp8


@pytest.mark.parametrize("fp8", [False, True], ids=["bf16", "fp8"])
def test_prefill_kernel_compiles_for_h100(fp8):
    from allmos.attention.kernels import prefill as k

    cache = "*fp8e4nv" if fp8 else "*bf16"
    types = {"q_ptr": "*bf16", "out_ptr": "*bf16", "k_cache_ptr": cache, "v_cache_ptr": cache, "qk_scale": "fp32"}
    types |= {"cu_seqlens_q_ptr": "*i32", "context_lens_ptr": "*i32", "block_tables_ptr": "*i32"} | FP8_SCALES
    types |= {name: "i32" for name in k._prefill_kernel.arg_names if name.startswith("stride_")}
    constexprs = {"GROUP": 2, "HEAD_DIM": 128, "BLOCK_SIZE": 256, "BLOCK_M": 64, "BLOCK_N": 64, "FP8": fp8}
    constexprs["V_DIM_MAJOR"] = False
    compiled = compile_for_h100(k._prefill_kernel, types, constexprs)
    assert "cubin" in compiled.asm and ("e4m3" in compiled.asm["ptx"]) == fp8


def compile_decode_split_kernel(direct_out, fused_combine, fp8, pdl, prefetch, fuse_rope=False, has_norm=False):
    from allmos.attention.kernels import decode as k

    types = dict.fromkeys(("q_ptr", "k_cache_ptr", "v_cache_ptr", "out_ptr"), "*bf16") | FP8_SCALES
    if fp8:
        types |= {"k_cache_ptr": "*fp8e4nv", "v_cache_ptr": "*fp8e4nv"}
    types |= {"block_tables_ptr": "*i32", "context_lens_ptr": "*i32", "seq_order_ptr": "*i64"}
    types |= {"partial_out_ptr": "*fp32", "partial_lse_ptr": "*fp32", "counters_ptr": "*i32", "qk_scale": "fp32"}
    types |= {name: "i32" for name in k._decode_split_kernel.arg_names if name.startswith("stride_")}
    types["num_splits"] = "i32"
    types |= dict.fromkeys(("new_k_ptr", "new_v_ptr", "q_norm_ptr", "k_norm_ptr"), "*bf16") | {"eps": "fp32"}
    types |= {"positions_ptr": "*i64", "slot_mapping_ptr": "*i64", "cos_ptr": "*fp32", "sin_ptr": "*fp32"}
    constexprs = {"GROUP": 2, "GROUP_PAD": 16, "HEAD_DIM": 128, "BLOCK_SIZE": 256, "BLOCK_N": 64}
    constexprs |= {"FUSE_ROPE": fuse_rope, "HAS_NORM": has_norm}
    constexprs |= {"DIRECT_OUT": direct_out, "ORDERED": True, "FUSED_COMBINE": fused_combine}
    constexprs |= {"HEADS_PER_MERGE": 2, "SPLITS_PAD": 32, "USE_PDL": pdl, "FP8": fp8, "PREFETCH": prefetch}
    constexprs["V_DIM_MAJOR"] = False
    return compile_for_h100(k._decode_split_kernel, types, constexprs)


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("fp8", [False, True], ids=["bf16", "fp8"])
@pytest.mark.parametrize("direct_out,fused_combine", [(True, False), (False, True), (False, False)])
def test_decode_split_kernel_compiles_for_h100(direct_out, fused_combine, fp8, pdl):
    compiled = compile_decode_split_kernel(direct_out, fused_combine, fp8, pdl, prefetch=False)
    assert "cubin" in compiled.asm and ("griddepcontrol.wait" in compiled.asm["ptx"]) == pdl
    assert ("e4m3" in compiled.asm["ptx"]) == fp8  # the e4m3 -> bf16 widening


@pytest.mark.parametrize("prefetch", [False, True], ids=["plain", "prefetch"])
@pytest.mark.parametrize("fp8", [False, True], ids=["bf16", "fp8"])
def test_decode_split_kernel_loads_its_first_tile_before_the_pdl_wait(fp8, prefetch):
    """With PREFETCH each program issues the loads of its first K/V tile (and with FP8 its scales) before
    it waits for the previous kernel; without, only the context length and the sequence order."""
    ptx = compile_decode_split_kernel(False, True, fp8, pdl=True, prefetch=prefetch).asm["ptx"]
    ops = re.findall(r"\b(ld\.global\S*|griddepcontrol\.\w+)", ptx)
    before_wait = ops[: ops.index("griddepcontrol.wait")]
    # 4 warps; without alignment hints (none here) one load per element: 64 tokens x 128 of K and of V
    element_loads = before_wait.count("ld.global.b8" if fp8 else "ld.global.b16")
    words = before_wait.count("ld.global.b32")  # context length, block table, FP8 scales
    assert element_loads == (2 * 64 * 128 // 128 if prefetch else 0)
    assert words == (2 + (8 if fp8 else 0) if prefetch else 1)
    assert before_wait.count("ld.global.b64") == 1  # the sequence order


@pytest.mark.parametrize("has_norm", [False, True], ids=["rope_only", "qk_norm"])
@pytest.mark.parametrize("prefetch", [False, True], ids=["plain", "prefetch"])
@pytest.mark.parametrize("pdl", [False, True], ids=["no_pdl", "pdl"])
def test_decode_split_kernel_with_the_rope_fused_compiles_for_h100(pdl, prefetch, has_norm):
    """attention.fuse_rope: the kernel that normalizes, rotates and stores the new token itself. Under PDL
    it reads the step's positions (and their cos/sin) before the wait, as it reads the sequence order."""
    compiled = compile_decode_split_kernel(False, True, False, pdl, prefetch, fuse_rope=True, has_norm=has_norm)
    ptx = compiled.asm["ptx"]
    assert "cubin" in compiled.asm and ("griddepcontrol.wait" in ptx) == pdl
    assert "st.global.b16" in ptx  # the new token's K/V rows
    if pdl:
        ops = re.findall(r"\b(ld\.global\S*|griddepcontrol\.\w+)", ptx)
        assert ops[: ops.index("griddepcontrol.wait")].count("ld.global.b64") == 2  # the order, the position


GEMV_TYPES = {name: "*bf16" for name in ("x_ptr", "r_ptr", "norm_w_ptr", "w_ptr", "y_ptr", "new_r_ptr", "gate_up_ptr")}
GEMV_TYPES |= dict.fromkeys(("M", "N", "stride_xm", "stride_rm", "stride_new_rm", "stride_wn", "stride_ym"), "i32")
GEMV_TYPES |= {"stride_gm": "i32", "eps": "fp32"}


def gemv_kernels():
    from allmos.linear.kernels import gemv_kernel as k

    one_row = {"BLOCK_M": 1, "BLOCK_N": 2}
    return {
        "skinny_linear_o": (k._skinny_linear_kernel, {"K": 2048, "BLOCK_K": 2048, **one_row}),
        "add_rms_norm_linear_qkv": (
            k._add_rms_norm_linear_kernel,
            {"K": 1024, "BLOCK_K": 1024, "HAS_RESIDUAL": True, **one_row},
        ),
        "silu_mul_linear_down": (k._silu_mul_linear_kernel, {"K": 3072, "BLOCK_K": 2048, **one_row}),
    }


@pytest.mark.parametrize("name", ["skinny_linear_o", "add_rms_norm_linear_qkv", "silu_mul_linear_down"])
@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
def test_gemv_kernels_compile_for_h100_with_the_weight_load_before_the_pdl_wait(name, pdl):
    """Under PDL each program issues its first weight chunk's loads, then waits for the previous kernel,
    and only then loads the input and stores: the order in the PTX is the order that makes PDL safe and
    worth it."""
    kernel, constexprs = gemv_kernels()[name]
    compiled = compile_for_h100(kernel, GEMV_TYPES, {**constexprs, "USE_PDL": pdl})
    assert "cubin" in compiled.asm
    ops = re.findall(r"\b(ld\.global\S*|st\.global\S*|griddepcontrol\.\w+)", compiled.asm["ptx"])
    if not pdl:
        assert not any(op.startswith("griddepcontrol") for op in ops)
        return
    wait = ops.index("griddepcontrol.wait")
    # 4 warps; without alignment hints (none here) one 16-bit load per element
    weight_loads_per_thread = constexprs["BLOCK_N"] * constexprs["BLOCK_K"] // (32 * 4)
    row_loads_per_thread = constexprs["K"] // (32 * 4)  # one 16-bit load per element of a row
    norm_weight_loads = row_loads_per_thread if name == "add_rms_norm_linear_qkv" else 0  # a constant, too
    expected = weight_loads_per_thread + norm_weight_loads
    assert ops[:wait] == ["ld.global.b16"] * expected + ["griddepcontrol.launch_dependents"]
    assert any(op.startswith("st.global") for op in ops[wait:])
    if name == "add_rms_norm_linear_qkv":  # one chunk: x and the residual are read once, after the wait
        assert ops[wait:].count("ld.global.b16") == 2 * row_loads_per_thread


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("prologue,has_residual", [(0, False), (1, True), (1, False), (2, False)])
def test_rows_linear_kernel_compiles_for_h100_with_tensor_cores(prologue, has_residual, pdl):
    """The multi-row GEMM's bf16 dot becomes Hopper warpgroup MMAs, its split-K counter an acquire-release
    atomic, and under PDL the grid-dependency wait comes before any load."""
    from allmos.linear.kernels import gemm_kernel as k

    pointers = ("a_ptr", "r_ptr", "norm_w_ptr", "w_ptr", "y_ptr", "new_r_ptr")
    types = dict.fromkeys(pointers, "*bf16") | {"partial_ptr": "*fp32", "counter_ptr": "*i32", "eps": "fp32"}
    types |= dict.fromkeys(("M", "N", "K", "split_k", "k_per_split"), "i32")
    types |= dict.fromkeys(("stride_am", "stride_rm", "stride_new_rm", "stride_wn", "stride_ym"), "i32")
    constexprs = {"PROLOGUE": prologue, "HAS_RESIDUAL": has_residual, "USE_PDL": pdl}
    constexprs |= {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 64}
    ptx = compile_for_h100(k.rows_linear_kernel, types, constexprs).asm["ptx"]
    assert "wgmma.mma_async" in ptx
    assert re.search(r"atom\.global\.(gpu\.)?acq_rel(\.gpu)?\.add", ptx)
    if pdl:
        assert ptx.index("griddepcontrol.wait") < ptx.index("ld.global")
    else:
        assert "griddepcontrol" not in ptx


def test_one_row_gemvs_multiply_in_the_weight_chunks_own_layout():
    """At one row the products keep the layout the weight chunk is loaded in: no copy of the chunk through
    shared memory (with its barriers) after the PDL wait. What shared memory remains is the final sum's
    partials across warps: a few bytes per output row, not the chunk's 2 bytes per weight."""
    from allmos.linear.kernels.gemv_config import default_config
    from allmos.microbench.kernel_resources import GEMVS, gemv_row

    for name, (_, n, k) in GEMVS.items():
        config = default_config(1, n, k)
        row = gemv_row(name, config)
        chunk_bytes = 2 * config["block_n"] * min(config["block_k"], triton.next_power_of_2(k))
        assert row["shared_bytes"] < chunk_bytes // 8, (name, row)


@pytest.mark.parametrize("sampling", [False, True], ids=["inputs", "inputs_and_sampling"])
def test_graph_inputs_kernel_compiles_for_h100(sampling):
    from allmos.graph_runner.kernels import static_inputs as k

    types = {}
    for side in ("src", "dst"):
        types |= dict.fromkeys((f"{side}_ids", f"{side}_positions", f"{side}_slots", f"{side}_seed"), "*i64")
        types |= {f"{side}_context": "*i32", f"{side}_table": "*i32", f"{side}_temps": "*fp32"}
    types |= dict.fromkeys(("n", "bucket", "width", "src_table_stride", "dst_table_stride"), "i32")
    constexprs = {"HAS_SAMPLING": sampling, "BLOCK_ROWS": k.BLOCK_ROWS, "BLOCK_COLS": k.BLOCK_COLS}
    compiled = compile_for_h100(k._load_static_inputs_kernel, types, constexprs)
    assert "cubin" in compiled.asm


@pytest.mark.parametrize("attention", [False, True], ids=["projections", "with_attention"])
@pytest.mark.parametrize("prefetch", ["registers", "none", "l2"])
def test_the_persistent_layers_probe_compiles_for_h100_with_each_prefetch(prefetch, attention):
    """Qwen3-0.6B's shapes over 132 programs, as persistent_chain launches it. The L2 mode's bulk prefetches
    reach the PTX, each from a tensor of one element a thread (a smaller one is replicated over the threads, and
    each copy would issue its prefetch again); the interpreter cannot run them, so this is their CPU check. The
    other modes issue none."""
    import torch

    from allmos.microbench import layer_chain as shapes
    from allmos.microbench import persistent_layers as k
    from allmos.microbench.kernel_resources import compile_sm90
    from allmos.microbench.persistent_attention import attention_inputs

    def empty(name):
        return torch.empty(shapes.SHAPES[name], dtype=torch.bfloat16)

    layer = {name: empty(name) for name in ("qkv", "o", "gate_up", "down")}
    layer |= {"norm1": torch.ones(shapes.HIDDEN, dtype=torch.bfloat16)}
    layer |= {"norm2": torch.ones(shapes.HIDDEN, dtype=torch.bfloat16)}
    heads = {"num_heads": shapes.NUM_HEADS, "num_kv_heads": shapes.NUM_KV_HEADS, "head_dim": shapes.HEAD_DIM}
    heads["block_size"] = shapes.BLOCK_SIZE
    cache = attention_inputs(2, 512, heads, "cpu") if attention else None
    runner = k.PersistentLayers(
        k.stacked([layer, layer]), shapes.Q_WIDTH, 1e-6, programs=132, prefetch=prefetch, attention=cache
    )
    positional, options = runner.launch_args(torch.empty(shapes.HIDDEN, dtype=torch.bfloat16))
    names = k.persistent_layers_kernel.arg_names
    type_names = {torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.int32: "*i32"}
    pointers = {n: type_names[v.dtype] for n, v in zip(names, positional) if isinstance(v, torch.Tensor)}
    values = {n: v for n, v in zip(names, positional) if not isinstance(v, torch.Tensor)}
    compiled = compile_sm90(k.persistent_layers_kernel, values, options, pointers, num_warps=8)
    prefetches = compiled.asm["ptx"].count("cp.async.bulk.prefetch.L2.global")
    assert prefetches == (0 if prefetch != "l2" else 7 if attention else 5)
    sites = [line for line in compiled.asm["ttgir"].splitlines() if "elementwise_inline_asm" in line]
    assert len(sites) == prefetches and all("-> tensor<256xi32" in line for line in sites)


def test_the_persistent_layers_probe_refuses_the_l2_mode_on_rows_bulk_prefetches_cannot_take():
    """Bulk prefetches take whole 16-byte pieces: a hidden width of 1020 bf16 values (2,040 bytes a row) is
    refused before any launch, naming the weight."""
    import torch

    from allmos.microbench import persistent_layers as k

    layer = {"qkv": torch.empty(64, 1020), "o": torch.empty(1020, 32), "gate_up": torch.empty(64, 1020)}
    layer |= {"down": torch.empty(1020, 32), "norm1": torch.ones(1020), "norm2": torch.ones(1020)}
    w = {name: t.to(torch.bfloat16) for name, t in k.stacked([layer]).items()}
    with pytest.raises(ValueError, match="prefetch='l2' needs 16-byte aligned qkv rows; got 1020 x torch.bfloat16"):
        k.PersistentLayers(w, 32, 1e-6, programs=4, prefetch="l2")
    k.PersistentLayers(w, 32, 1e-6, programs=4, prefetch="none")


def test_the_l2_side_stream_kernels_compile_for_h100():
    """The bulk mode's kernel issues one bulk prefetch a thread (its tensor is one element a thread, so no copy of it
    is asked for twice); the load mode's keeps its lines in the L2. The interpreter cannot run the bulk prefetch, so
    this is its CPU check."""
    from allmos.microbench import l2_side_stream as k
    from allmos.microbench.kernel_resources import compile_sm90

    threads = k.PREFETCH_THREADS
    bulk_args = ({"nbytes": 8 << 20}, {"PIECES": threads}, {"ptr": "*i8"})
    bulk = compile_sm90(k._bulk_prefetch_kernel, *bulk_args, num_warps=threads // 32)
    assert bulk.asm["ptx"].count("cp.async.bulk.prefetch.L2.global") == 1
    sites = [line for line in bulk.asm["ttgir"].splitlines() if "elementwise_inline_asm" in line]
    assert len(sites) == 1 and f"-> tensor<{threads}xi32" in sites[0]
    pointers = {"ptr": "*i32", "scratch_ptr": "*i32"}
    load = compile_sm90(k._load_to_l2_kernel, {"n_words": 2 << 20}, {"BLOCK": k.LOAD_BLOCK}, pointers, num_warps=4)
    assert "evict_last" in load.asm["ptx"]
