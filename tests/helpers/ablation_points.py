"""The ablation experiments' points as switch values: what each cumulative stage and leave-one-out point of
experiments/ must compose to (tests/e2e/test_experiments.py checks each against conf/ and experiments/)."""

SWITCHES = (
    "attention",
    "kv_store",
    "cuda_graphs",
    "compile",
    "prefix_caching",
    "async_scheduling",
    "rope",
    "sampler",
    "linear",
    "kv_cache_dtype",
)
ALL_OFF = ("sdpa", "torch", False, False, False, False, "torch", "gumbel", "torch", "auto")
ALL_ON = ("triton", "triton", True, True, True, True, "triton", "triton", "triton", "auto")
FP8 = ALL_ON[:-1] + ("fp8",)


def with_options(
    stages: dict,
    pdl_off=frozenset(),
    gemm_off=frozenset(),
    prefetch_off=frozenset(),
    fuse_rope_on=frozenset(),
    qkv_rope_off=frozenset(),
    uncapped=frozenset(),
    graph_inputs_off=frozenset(),
    two_kv_buffers=frozenset(),
) -> dict:
    """Each stage's switches plus whether programmatic dependent launch is left on (every `pdl` option
    of the Triton plugins at its default), whether linear=triton's multi-row GEMMs are, whether the
    Triton decode's first-tile prefetch is, whether the Triton decode fuses the rope (off by default),
    whether the qkv GEMV's rope is left on (rope.fuse_qkv, on by default), the decode's register cap
    (None: the default, 168 on FP8 pages; 0: none), whether one kernel loads graph replays' inputs
    (fused_graph_inputs: on unless turned off; it does nothing without graphs), and the decode's K/V buffers
    (decode_kv_buffers; None: the default)."""
    flags = (pdl_off, gemm_off, prefetch_off, fuse_rope_on, qkv_rope_off, uncapped, graph_inputs_off, two_kv_buffers)
    return {name: values + stage_flags(name, *flags) for name, values in stages.items()}


def stage_flags(
    name: str, pdl_off, gemm_off, prefetch_off, fuse_rope_on, qkv_rope_off, uncapped, inputs_off, two_kv_buffers
) -> tuple:
    cap = 0 if name in uncapped else None
    fused = (name in fuse_rope_on, name not in qkv_rope_off)
    buffers = 2 if name in two_kv_buffers else None
    on = (name not in pdl_off, name not in gemm_off, name not in prefetch_off)
    return (*on, *fused, cap, name not in inputs_off, buffers)


CUMULATIVE = {  # the stated order: each stage adds one optimization to the one before
    "c0_all_off": ALL_OFF,
    "c1_attention_triton": ("triton", "torch", False, False, False, False, "torch", "gumbel", "torch", "auto"),
    "c2_kv_store_triton": ("triton", "triton", False, False, False, False, "torch", "gumbel", "torch", "auto"),
    "c3_cuda_graphs": ("triton", "triton", True, False, False, False, "torch", "gumbel", "torch", "auto"),
    "c4_compile": ("triton", "triton", True, True, False, False, "torch", "gumbel", "torch", "auto"),
    "c5_prefix_caching": ("triton", "triton", True, True, True, False, "torch", "gumbel", "torch", "auto"),
    "c6_async_scheduling": ("triton", "triton", True, True, True, True, "torch", "gumbel", "torch", "auto"),
    "c7_rope_triton": ("triton", "triton", True, True, True, True, "triton", "gumbel", "torch", "auto"),
    "c8_sampler_triton": ("triton", "triton", True, True, True, True, "triton", "triton", "torch", "auto"),
    "c9_linear_triton": ALL_ON,
    "c10_kv_cache_fp8": FP8,
}
CUMULATIVE = with_options(CUMULATIVE)
LEAVE_ONE_OUT = {
    "all_on": ALL_ON,
    "no_attention": ("sdpa", "triton", True, True, True, True, "triton", "triton", "triton", "auto"),
    "no_kv_store": ("triton", "torch", True, True, True, True, "triton", "triton", "triton", "auto"),
    "no_cuda_graphs": ("triton", "triton", False, True, True, True, "triton", "triton", "triton", "auto"),
    "no_graph_sampling": ("triton", "triton", "forward", True, True, True, "triton", "triton", "triton", "auto"),
    "no_fused_graph_inputs": ALL_ON,
    "no_compile": ("triton", "triton", True, False, True, True, "triton", "triton", "triton", "auto"),
    "no_prefix_caching": ("triton", "triton", True, True, False, True, "triton", "triton", "triton", "auto"),
    "no_async_scheduling": ("triton", "triton", True, True, True, False, "triton", "triton", "triton", "auto"),
    "no_rope": ("triton", "triton", True, True, True, True, "torch", "triton", "triton", "auto"),
    "no_sampler": ("triton", "triton", True, True, True, True, "triton", "gumbel", "triton", "auto"),
    "no_linear": ("triton", "triton", True, True, True, True, "triton", "triton", "torch", "auto"),
    "no_pdl": ALL_ON,
    "no_gemm": ALL_ON,
    "no_prefetch_kv": ALL_ON,
    "no_qkv_rope": ALL_ON,
    "with_fuse_rope": ALL_ON,
    "kv_cache_fp8": FP8,
    "kv_cache_fp8_no_register_cap": FP8,
    "kv_cache_fp8_two_kv_buffers": FP8,
    "all_on_again": ALL_ON,  # the A/A pair of all_on, run last
}
LEAVE_ONE_OUT = with_options(
    LEAVE_ONE_OUT,
    {"no_pdl"},
    {"no_gemm"},
    {"no_prefetch_kv"},
    {"with_fuse_rope"},
    {"no_qkv_rope", "with_fuse_rope"},
    {"kv_cache_fp8_no_register_cap"},
    {"no_fused_graph_inputs"},
    {"kv_cache_fp8_two_kv_buffers"},
)
# Leave-one-out points that change one switch of another point rather than of all_on.
COMPARED_WITH = {
    "kv_cache_fp8_no_register_cap": "kv_cache_fp8",
    "kv_cache_fp8_two_kv_buffers": "kv_cache_fp8",
    "with_fuse_rope": "no_qkv_rope",
}


def switches(cfg) -> tuple:
    named = tuple(
        cfg[s].name if s in ("attention", "kv_store", "rope", "sampler", "linear") else cfg[s] for s in SWITCHES
    )
    pdl = all(cfg[plugin].get("pdl", True) for plugin in ("attention", "rope", "linear"))
    attention = cfg.attention
    fuse_rope, cap = attention.get("fuse_rope", False), attention.get("decode_max_registers", None)
    qkv_rope = cfg.rope.get("fuse_qkv", True)  # as pdl: on unless turned off (rope=torch has no such option)
    flags = (pdl, cfg.linear.get("gemm", True), attention.get("prefetch_kv", True), fuse_rope, qkv_rope, cap)
    return named + flags + (cfg.fused_graph_inputs, attention.get("decode_kv_buffers", None))
