"""Greedy outputs equal transformers' own generate, token for token, on tiny float64 models."""

import itertools

import pytest
from models import hf_greedy

from allmos import LLM, SamplingParams

PROMPTS = [
    [5, 6, 7, 8, 9, 10, 11],
    list(range(20, 60)),
    [3, 4],
    list(range(100, 133)),
    list(range(300, 320)) * 2,
]
MAX_TOKENS = 24


@pytest.fixture(scope="module")
def reference(tiny_qwen3):
    return hf_greedy(tiny_qwen3, PROMPTS, MAX_TOKENS)


def generate(folder, **options):
    llm = LLM(folder, dtype="float64", max_model_len=256, num_kv_blocks=128, **options)
    params = SamplingParams(temperature=0, max_tokens=MAX_TOKENS)
    return [out["token_ids"] for out in llm.generate(PROMPTS, params, use_tqdm=False)]


COMBOS = list(
    itertools.product(["continuous", "static", "mixed"], [False, True], [False, True], [8, 256], [False, True])
)


@pytest.mark.parametrize("scheduler,prefix_caching,chunked_prefill,block_size,async_scheduling", COMBOS)
def test_greedy_parity_every_combination(
    tiny_qwen3, reference, scheduler, prefix_caching, chunked_prefill, block_size, async_scheduling
):
    budget = 32 if chunked_prefill else 256  # 32 < the longest prompt: chunks really happen (mixed: always)
    out = generate(
        tiny_qwen3,
        scheduler=scheduler,
        prefix_caching=prefix_caching,
        chunked_prefill=chunked_prefill,
        block_size=block_size,
        max_num_batched_tokens=budget,
        async_scheduling=async_scheduling,
    )
    assert out == reference


# every scheduler with every policy it takes; priorities that reorder the prompts
SCHEDULER_POLICIES = [(s, p) for s in ("continuous", "mixed") for p in ("fcfs", "priority", "sjf")] + [
    ("static", "fcfs")
]
PRIORITIES = [2, -1, 0, 1, -1]


@pytest.mark.parametrize("scheduler,policy", SCHEDULER_POLICIES)
@pytest.mark.parametrize("async_scheduling", [False, True])
def test_greedy_parity_every_scheduler_and_policy(tiny_qwen3, reference, scheduler, policy, async_scheduling):
    """Three at a time out of five, so the policy decides who starts when; prompts chunked by 16."""
    llm = LLM(
        tiny_qwen3,
        dtype="float64",
        max_model_len=256,
        num_kv_blocks=128,
        block_size=8,
        max_num_seqs=3,
        chunked_prefill=True,
        max_num_batched_tokens=16,
        scheduler={"name": scheduler, "policy": policy},
        async_scheduling=async_scheduling,
    )
    params = SamplingParams(temperature=0, max_tokens=MAX_TOKENS)
    out = llm.generate(PROMPTS, params, use_tqdm=False, priority=PRIORITIES)
    assert [o["token_ids"] for o in out] == reference
    if scheduler == "mixed":
        assert llm.engine.stats.steps("mixed") > 0


@pytest.mark.parametrize("scheduler,policy", SCHEDULER_POLICIES)
@pytest.mark.parametrize("async_scheduling", [False, True])
def test_parity_with_preemption(tiny_qwen3, reference, scheduler, policy, async_scheduling):
    """A cache of 12 blocks of 8 tokens cannot hold all five sequences: some are recomputed."""
    llm = LLM(
        tiny_qwen3,
        dtype="float64",
        max_model_len=256,
        num_kv_blocks=12,
        block_size=8,
        scheduler={"name": scheduler, "policy": policy},
        async_scheduling=async_scheduling,
    )
    params = SamplingParams(temperature=0, max_tokens=MAX_TOKENS)
    out = llm.generate(PROMPTS, params, use_tqdm=False, priority=PRIORITIES)
    assert [o["token_ids"] for o in out] == reference
    assert llm.engine.stats.counts["preemptions"] > 0


@pytest.mark.parametrize("family", ["qwen3", "qwen2", "llama"])
def test_families_match_transformers(tiny_models, family):
    folder = tiny_models[family]
    assert generate(folder, block_size=16) == hf_greedy(folder, PROMPTS, MAX_TOKENS)


def test_bfloat16_runs_close_to_float64(tiny_qwen3, reference):
    """bfloat16 on CPU: outputs agree with the float64 reference at least at the first token."""
    llm = LLM(tiny_qwen3, dtype="bfloat16", max_model_len=256, num_kv_blocks=64, block_size=16)
    out = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=MAX_TOKENS), use_tqdm=False)
    assert sum(o["token_ids"][0] == r[0] for o, r in zip(out, reference)) >= len(PROMPTS) - 1
