"""Tensor parallelism on two CUDA devices (NCCL, bf16): tensor_parallel_size=2 agrees with 1 under
the vLLM-style check (allmos.bench.compare.close_enough), with CUDA graphs on and off, for the sdpa
and triton attention backends (with the torch, respectively Triton, store, rope, linear and sampler
plugins), with the mixed and static schedulers and on FP8 pages; a worker's failure surfaces once and
leaves no process behind."""

import itertools
import multiprocessing

import pytest
import torch
import torch.distributed as dist
from gpu_workload import GPU_ENGINE, GPU_MODEL, assert_close
from gpu_workload import generate_with_tops as generate
from models import save_tiny_model

from allmos import LLM
from allmos.distributed.launcher import WorkerError
from allmos.distributed.worker import FAIL_ENV

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices"),
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("gpu_tp_qwen3"), "qwen3", init_std=0.1, **GPU_MODEL)


def make(folder, **switches):
    if switches.get("cuda_graphs"):
        # a fixed cache size skips the memory profiling (the cuda_graphs=false cases cover it on two ranks)
        switches.setdefault("num_kv_blocks", 512)
    return LLM(folder, **(GPU_ENGINE | {"block_size": 16} | switches))


def assert_all_stopped():
    assert multiprocessing.active_children() == []
    assert not dist.is_initialized()


@pytest.fixture(scope="module")
def baseline(folder):
    llm = make(folder)
    out = generate(llm)
    del llm
    torch.cuda.empty_cache()
    return out


COMBOS = list(itertools.product(["sdpa", "triton"], [False, True], [False, True], [False, True]))
# both stores, rope, linear and sampler plugins covered, each with one backend (the triton ones with the
# triton backend: the fused K/V store in the rope kernel, the single-row GEMVs before the all-reduce)
KV_STORE = {"sdpa": "torch", "triton": "triton"}
ROPE = LINEAR = KV_STORE
SAMPLER = {"sdpa": "gumbel", "triton": "triton"}


@pytest.mark.parametrize("attention,cuda_graphs,prefix_caching,async_scheduling", COMBOS)
def test_two_ranks_agree_with_one(folder, baseline, attention, cuda_graphs, prefix_caching, async_scheduling):
    llm = make(
        folder,
        tensor_parallel_size=2,
        attention=attention,
        kv_store=KV_STORE[attention],
        rope=ROPE[attention],
        linear=LINEAR[attention],
        sampler=SAMPLER[attention],
        cuda_graphs=cuda_graphs,
        prefix_caching=prefix_caching,
        async_scheduling=async_scheduling,
    )
    try:
        assert_close(generate(llm), baseline)
        counters = llm.engine.counters()
        assert counters["attention_backend"] == attention
        assert (counters["graph_forwards"] > 0) == cuda_graphs
        assert (counters["cached_prompt_tokens"] > 0) == prefix_caching
        assert (counters["ahead_steps"] > 0) == async_scheduling
        assert counters["kv_store"] == KV_STORE[attention] and counters["rope"] == ROPE[attention]
        assert counters["linear"] == LINEAR[attention] and counters["sampler"] == SAMPLER[attention]
    finally:
        llm.engine.runner.close()
    del llm
    torch.cuda.empty_cache()
    assert_all_stopped()


TRITON_PLUGINS = dict(attention="triton", kv_store="triton", rope="triton", linear="triton", sampler="triton")
SCHEDULERS = {
    # a budget of 32 tokens: prompts are chunked beside the decodes, in one forward
    "mixed": ({"max_num_batched_tokens": 32, "prefix_caching": True}, lambda stats: stats.steps("mixed") > 0),
    # two sequences at a time, each pair run to its end before the next is admitted
    "static": ({"max_num_seqs": 2}, lambda stats: max(step.batch_size for step in stats.trace) == 2),
}


@pytest.mark.parametrize("scheduler", SCHEDULERS)
def test_each_scheduler_on_two_ranks_agrees_with_one(folder, baseline, scheduler):
    """scheduler=mixed and static with the Triton plugins and CUDA graphs, two ranks against one (the
    continuous scheduler): the schedulers batch differently but compute the same tokens."""
    options, ran_as_scheduled = SCHEDULERS[scheduler]
    llm = make(folder, tensor_parallel_size=2, scheduler=scheduler, cuda_graphs=True, **TRITON_PLUGINS, **options)
    try:
        assert_close(generate(llm), baseline)
        assert llm.engine.counters()["scheduler"] == scheduler
        assert ran_as_scheduled(llm.engine.stats)
    finally:
        llm.engine.runner.close()
    del llm
    torch.cuda.empty_cache()
    assert_all_stopped()


@pytest.mark.parametrize("attention", ["sdpa", "triton"])
def test_fp8_kv_cache_on_two_ranks_agrees_with_one(folder, attention):
    """kv_cache_dtype=fp8 on two ranks (each quantizes its own kv heads) against one rank, both fp8."""
    switches = dict(attention=attention, kv_store=KV_STORE[attention], rope=ROPE[attention], kv_cache_dtype="fp8")
    llm = make(folder, **switches)
    one = generate(llm)
    del llm
    torch.cuda.empty_cache()
    llm = make(folder, tensor_parallel_size=2, cuda_graphs=True, **switches)
    try:
        assert_close(generate(llm), one)
        assert llm.engine.counters()["kv_cache_dtype"] == "float8_e4m3fn"
    finally:
        llm.engine.runner.close()
    del llm
    torch.cuda.empty_cache()
    assert_all_stopped()


@pytest.mark.parametrize("point", ["load", "step3"])
def test_worker_failure_surfaces_once(folder, monkeypatch, point):
    monkeypatch.setenv(FAIL_ENV, f"1:{point}")
    with pytest.raises(WorkerError, match=f"deliberate failure of rank 1 at {point}") as info:
        llm = make(folder, tensor_parallel_size=2, cuda_graphs=True)
        generate(llm)
    assert str(info.value).count("Traceback") == 1
    assert_all_stopped()
    llm = None
    torch.cuda.empty_cache()
