"""kv_cache_dtype=fp8 through the whole CPU engine (sdpa, torch store): about twice the blocks in the
same bytes, counted in the record, and greedy outputs close to kv_cache_dtype=auto's, with prefix
caching and preemption (the scales travel with the pages)."""

import pytest
import torch
from fp8_checks import assert_close_to

from allmos import LLM, SamplingParams
from allmos.engine.kv_cache import CacheShape
from allmos.kv_store.fp8 import FP8

PROMPTS = [[5, 6, 7, 8, 9, 10, 11], list(range(20, 60)), [3, 4], list(range(20, 52)) + [9], list(range(100, 300, 3))]
SMALL = dict(device="cpu", dtype="float32", block_size=16, max_model_len=256, max_num_batched_tokens=256)


def greedy(llm, prompts=PROMPTS, max_tokens=24):
    params = SamplingParams(temperature=0, max_tokens=max_tokens, ignore_eos=True, logprobs=5)
    return [
        (s.output_token_ids, [dict(t) for t in s.top_logprobs])
        for s in llm.run_requests(prompts, [params] * len(prompts))
    ]


def test_block_bytes_count_fp8_values_and_their_scales():
    bf16 = CacheShape(28, 8, 128, 256, torch.bfloat16)  # Qwen3-0.6B
    fp8 = CacheShape(28, 8, 128, 256, FP8)
    assert bf16.block_bytes == 2 * 28 * 8 * 128 * 2 * 256
    assert fp8.block_bytes == 2 * 28 * 8 * (128 + 4) * 256  # a float32 scale per (token, kv head)
    assert bf16.block_bytes / fp8.block_bytes == pytest.approx(1.94, abs=0.01)


@pytest.fixture(scope="module")
def auto_outputs(tiny_qwen3):
    return greedy(LLM(tiny_qwen3, num_kv_blocks=32, **SMALL))


@pytest.mark.parametrize("store", [{"name": "torch"}, {"name": "torch", "fp8_scale": 1.0}])
def test_fp8_greedy_outputs_stay_close_to_auto(tiny_qwen3, auto_outputs, store):
    llm = LLM(tiny_qwen3, num_kv_blocks=32, kv_cache_dtype="fp8", kv_store=store, **SMALL)
    greedy(llm, PROMPTS[1:2])  # its blocks stay cached: the batch below reads them (and their scales)
    assert_close_to(auto_outputs, greedy(llm))
    counters = llm.engine.counters()
    assert counters["kv_cache_dtype"] == "float8_e4m3fn" and counters["cached_prompt_tokens"] > 0  # a shared prefix


def test_fp8_sizes_the_cache_in_bytes_and_the_record_says_so(tiny_qwen3):
    blocks = {}
    for dtype in ("auto", "fp8"):
        llm = LLM(tiny_qwen3, cpu_kv_cache_gib=2**-10, kv_cache_dtype=dtype, **SMALL)
        blocks[dtype] = llm.engine.counters()["num_kv_blocks"]
        shape = llm.engine.runner.cache_shape
        assert blocks[dtype] == 2**20 // shape.block_bytes - 1
    # float32 values of head_dim 16 (64 bytes) become 16 bytes and a 4-byte scale: 3.2x the blocks
    assert blocks["fp8"] / blocks["auto"] == pytest.approx(3.2, rel=0.05)


def test_fp8_with_preemption_recomputes_close_to_auto(tiny_qwen3, auto_outputs):
    """Too few blocks for every sequence at once: some are preempted, their pages (and scales) freed
    and rewritten by recomputation."""
    llm = LLM(tiny_qwen3, num_kv_blocks=6, kv_cache_dtype="fp8", **SMALL)
    outputs = greedy(llm)
    assert llm.engine.counters()["preemptions"] > 0
    assert_close_to(auto_outputs, outputs)
