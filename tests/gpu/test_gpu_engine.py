"""Engine checks on a CUDA device (bf16): against transformers, and every switch combination
against the all-off baseline, with the vLLM-style comparison."""

import gc
import itertools

import pytest
import torch
from gpu_workload import GPU_ENGINE, GPU_MODEL, MAX_TOKENS, PROMPTS, TOP, assert_close, generate_with_tops
from models import save_tiny_model

from allmos import LLM
from allmos.attention.flash import installed_flavor
from allmos.config import ALL_OFF, EngineConfig

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("gpu_qwen3"), "qwen3", init_std=0.1, **GPU_MODEL)


def run_ours(folder, **switches):
    llm = LLM(folder, **(GPU_ENGINE | switches))
    return llm, generate_with_tops(llm)


def run_transformers(folder):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.bfloat16).cuda().eval()
    model.generation_config.eos_token_id = None  # like ignore_eos
    results = []
    for prompt in PROMPTS:
        ids = torch.tensor([prompt], device="cuda")
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=MAX_TOKENS,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
            pad_token_id=0,
        )
        tokens = out.sequences[0, len(prompt) :].tolist()
        tops = [step[0].float().topk(TOP).indices.tolist() for step in out.logits]
        results.append((tokens, tops))
    return results


@pytest.fixture(scope="module")
def baseline(folder):
    return run_ours(folder)[1]


def test_bf16_matches_transformers(folder, baseline):
    ref = run_transformers(folder)
    assert_close(baseline, ref[:1] + ref)  # ours starts with the first prompt alone


def attention_choices():
    return ["sdpa", "triton"] + (["flash"] if installed_flavor() else [])


# Every combination with rope=torch, sampler=gumbel, linear=torch; rope=triton and linear=triton
# (which replace the ops that compile does) with every attention backend x cuda_graphs x compile, the
# other switches on, and sampler=triton where compile is on (greedy tokens must not change).
# kv_cache_dtype=fp8 (approximate, held to the same top-k comparison) with each backend that reads FP8
# pages and each store, eager and in CUDA graphs, the rest on (rope=triton: the store fused in it).
COMBOS = (
    [
        combo + ("torch", "gumbel", "torch", "auto")
        for combo in itertools.product(
            attention_choices(), [False, True], ["torch", "triton"], [False, True], [False, True], [False, True]
        )
    ]
    + [
        (
            attention,
            graphs,
            "triton",
            True,
            compiled,
            True,
            "triton",
            "triton" if compiled else "gumbel",
            "triton",
            "auto",
        )
        for attention, graphs, compiled in itertools.product(attention_choices(), [False, True], [False, True])
    ]
    + [
        (attention, graphs, kv_store, True, True, True, "triton", "triton", "triton", "fp8")
        for attention, graphs, kv_store in itertools.product(["sdpa", "triton"], [False, True], ["torch", "triton"])
    ]
)
SWITCH_NAMES = (
    "attention,cuda_graphs,kv_store,prefix_caching,compile,async_scheduling,rope,sampler,linear,kv_cache_dtype"
)


@pytest.mark.parametrize(SWITCH_NAMES, COMBOS)
def test_switch_combination_agrees_with_baseline(
    folder,
    baseline,
    attention,
    cuda_graphs,
    kv_store,
    prefix_caching,
    compile,
    async_scheduling,
    rope,
    sampler,
    linear,
    kv_cache_dtype,
):
    block_size = 256 if attention == "flash" else 16
    llm, ours = run_ours(
        folder,
        attention=attention,
        cuda_graphs=cuda_graphs,
        kv_store=kv_store,
        prefix_caching=prefix_caching,
        compile=compile,
        async_scheduling=async_scheduling,
        rope=rope,
        sampler=sampler,
        linear=linear,
        block_size=block_size,
        kv_cache_dtype=kv_cache_dtype,
    )
    assert_close(ours, baseline)
    counters = llm.engine.counters()
    assert counters["kv_cache_dtype"] == {"auto": "bfloat16", "fp8": "float8_e4m3fn"}[kv_cache_dtype]
    assert counters["attention_backend"] == attention and counters["kv_store"] == kv_store
    assert counters["rope"] == rope and counters["sampler"] == sampler and counters["linear"] == linear
    assert (counters["graph_forwards"] > 0) == cuda_graphs
    if cuda_graphs:
        widths = llm.engine.runner.graph_runner.widths
        assert (len(widths) > 1) == (attention == "sdpa")  # sdpa's gather follows the table width
    assert (counters["ahead_steps"] > 0) == async_scheduling
    if prefix_caching and block_size == 16:
        assert counters["cached_prompt_tokens"] > 0


def outputs_of(folder, **switches):
    """generate_with_tops of a fresh engine, freed before returning (two engines at once do not fit)."""
    llm, outputs = run_ours(folder, **switches)
    del llm
    gc.collect()
    torch.cuda.empty_cache()
    return outputs


PDL_OFF = {
    "attention": {"name": "triton", "pdl": False},
    "rope": {"name": "triton", "pdl": False},
    "linear": {"name": "triton", "pdl": False},
}


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_programmatic_dependent_launch_changes_no_token(folder, baseline, cuda_graphs):
    """PDL (on by default in attention, rope and linear=triton) changes when kernels start, not what
    they compute: the same tokens and top-k ids as with every pdl option off, eager and in CUDA graphs."""
    switches = {"kv_store": "triton", "sampler": "triton", "cuda_graphs": cuda_graphs}
    with_pdl = outputs_of(folder, attention="triton", rope="triton", linear="triton", **switches)
    without = outputs_of(folder, **PDL_OFF, **switches)
    assert with_pdl == without
    assert_close(with_pdl, baseline)


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_decode_prefetch_changes_no_token(folder, baseline, cuda_graphs):
    """attention.prefetch_kv (on by default) changes when the Triton decode reads its first K/V tile, not
    what it computes: the same tokens and top-k ids as with it off, every pdl option on, eager and in
    CUDA graphs."""
    switches = {"kv_store": "triton", "rope": "triton", "linear": "triton", "sampler": "triton"}
    with_prefetch = outputs_of(folder, attention="triton", cuda_graphs=cuda_graphs, **switches)
    attention = {"name": "triton", "prefetch_kv": False}
    assert with_prefetch == outputs_of(folder, attention=attention, cuda_graphs=cuda_graphs, **switches)
    assert_close(with_prefetch, baseline)


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_decode_fuse_rope_agrees_with_baseline(folder, baseline, cuda_graphs):
    """attention.fuse_rope: decode steps normalize, rotate and store the new token inside the Triton decode
    kernel instead of the rope kernel; both within the comparison's tolerance of the baseline, every other
    switch on, eager and in CUDA graphs."""
    rope = {"name": "triton", "fuse_qkv": False}  # the other place for that work, on by default
    switches = {"kv_store": "triton", "rope": rope, "linear": "triton", "sampler": "triton"}
    unfused = outputs_of(folder, attention="triton", cuda_graphs=cuda_graphs, **switches)
    fused = outputs_of(folder, attention={"name": "triton", "fuse_rope": True}, cuda_graphs=cuda_graphs, **switches)
    assert_close(unfused, baseline)
    assert_close(fused, baseline)


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_qkv_rope_epilogue_agrees_with_baseline(folder, baseline, cuda_graphs):
    """rope.fuse_qkv: one-token decode steps normalize, rotate and store K/V in the qkv GEMV's epilogue, with
    the rope kernel's functions (the compiled rotation may differ in a last bit: test_qkv_rope_gpu.py); with
    and without it, within the comparison's tolerance of the baseline, every other switch on (pdl too),
    eager and in CUDA graphs."""
    switches = {"attention": "triton", "kv_store": "triton", "linear": "triton", "sampler": "triton"}
    fused = outputs_of(folder, rope={"name": "triton", "fuse_qkv": True}, cuda_graphs=cuda_graphs, **switches)
    assert_close(fused, baseline)
    unfused = {"name": "triton", "fuse_qkv": False}
    assert_close(outputs_of(folder, rope=unfused, cuda_graphs=cuda_graphs, **switches), baseline)


@pytest.mark.parametrize("cuda_graphs", [False, True])
def test_linear_gemm_option_agrees_with_baseline(folder, baseline, cuda_graphs):
    """linear=triton with and without its multi-row GEMMs (linear.gemm): the batched steps of these
    prompts take the GEMMs or cuBLAS, and both stay within the comparison's tolerance of the baseline."""
    for gemm in (False, True):
        linear = {"name": "triton", "gemm": gemm}
        ours = outputs_of(folder, attention="triton", kv_store="triton", linear=linear, cuda_graphs=cuda_graphs)
        assert_close(ours, baseline)


@pytest.mark.parametrize("decode_block_n", [32, 128])
def test_decode_block_n_option_agrees_with_baseline(folder, baseline, decode_block_n):
    """attention=triton with another decode tile (attention.decode_block_n), in CUDA graphs."""
    attention = {"name": "triton", "decode_block_n": decode_block_n}
    ours = outputs_of(folder, attention=attention, kv_store="triton", cuda_graphs=True)
    assert_close(ours, baseline)


# scheduler=mixed (a budget of 32 tokens: prompts are chunked beside the decodes) with each attention
# backend, CUDA graphs (decode-only steps) and async look-ahead off and on; then everything on, with the
# fcfs and sjf policies.
MIXED_COMBOS = [
    (attention, graphs, ahead, "fcfs", False)
    for attention, graphs, ahead in itertools.product(attention_choices(), [False, True], [False, True])
] + [("triton", True, True, policy, True) for policy in ("fcfs", "sjf")]


@pytest.mark.parametrize("attention,cuda_graphs,async_scheduling,policy,everything_on", MIXED_COMBOS)
def test_mixed_scheduler_agrees_with_baseline(
    folder, baseline, attention, cuda_graphs, async_scheduling, policy, everything_on
):
    on = {k: getattr(EngineConfig(), k) for k in ALL_OFF} if everything_on else {"kv_store": "triton"}
    switches = on | dict(
        attention=attention,
        cuda_graphs=cuda_graphs,
        async_scheduling=async_scheduling,
        prefix_caching=True,
        scheduler={"name": "mixed", "policy": policy},
        max_num_batched_tokens=32,
        block_size=256 if attention == "flash" else 16,
    )
    llm, ours = run_ours(folder, **switches)
    assert_close(ours, baseline)
    engine = llm.engine
    counters = engine.counters()
    assert counters["scheduler"] == "mixed" and counters["attention_backend"] == attention
    assert engine.stats.steps("mixed") > 0  # decode rows and prompt chunks in one forward
    assert (counters["graph_forwards"] > 0) == cuda_graphs  # decode-only steps replay graphs
    assert counters["eager_forwards"] >= engine.stats.steps("mixed") + engine.stats.steps("prefill")
    assert (counters["ahead_steps"] > 0) == async_scheduling and counters["ahead_prefill_steps"] == 0


def test_fp8_triton_in_cuda_graphs_agrees_with_eager_and_holds_about_twice_the_blocks(folder, baseline):
    """attention=triton, kv_cache_dtype=fp8: decode steps replayed from CUDA graphs (the scales are
    static buffers beside the pages, bound at capture) agree with the eager steps; the cache holds
    about twice the blocks of bf16 in the same memory (head_dim 64: 128 bytes a row vs 64 + a 4-byte
    scale)."""
    switches = dict(attention="triton", kv_store="triton", rope="triton", kv_cache_dtype="fp8")
    blocks, outputs = {}, {}
    for graphs in (False, True):
        llm, outputs[graphs] = run_ours(folder, cuda_graphs=graphs, **switches)
        counters = llm.engine.counters()
        assert (counters["graph_forwards"] > 0) == graphs and counters["kv_cache_dtype"] == "float8_e4m3fn"
        blocks[graphs] = counters["num_kv_blocks"]
        del llm
        gc.collect()
        torch.cuda.empty_cache()
    assert_close(outputs[True], outputs[False])  # graphs split the decode by the padded table width
    assert_close(outputs[False], baseline)
    llm, _ = run_ours(folder, attention="triton", kv_store="triton", rope="triton")
    assert 1.7 <= blocks[True] / llm.engine.counters()["num_kv_blocks"] <= 1.95
