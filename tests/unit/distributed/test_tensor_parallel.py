"""Tensor parallelism on CPU (gloo): two ranks give one rank's greedy tokens on the tiny float64
model, with each scheduler (continuous, mixed, static) and on FP8 pages; sizes that do not divide the
heads are refused; a worker's failure surfaces once in the parent; failures, Ctrl-C, close() and
garbage collection leave no worker process behind."""

import gc
import multiprocessing
import os
import subprocess
import sys
import textwrap

import pytest
import torch.distributed as dist
from repo_paths import ROOT

from allmos import LLM, SamplingParams
from allmos.distributed.launcher import WorkerError
from allmos.distributed.worker import FAIL_ENV
from allmos.errors import ConfigError

try:
    import psutil
except ImportError:  # not a test dependency: fall back to multiprocessing's own view and /proc
    psutil = None

SHARED = list(range(40, 72))  # four blocks of 8: later prompts find them in the prefix cache
PROMPTS = [SHARED + [5, 6, 7], [3, 4], list(range(100, 133)), SHARED + list(range(200, 210))]
PARAMS = SamplingParams(temperature=0, max_tokens=16)


def make(folder, **options):
    options = {"dtype": "float64", "max_model_len": 256, "num_kv_blocks": 64, "block_size": 8, **options}
    return LLM(folder, **options)


def greedy(llm, prompts=PROMPTS):
    return [o["token_ids"] for o in llm.generate(prompts, PARAMS, use_tqdm=False)]


def live_children() -> list:
    """Child processes still running, multiprocessing's resource tracker aside."""
    if psutil is None:
        return multiprocessing.active_children()
    out = []
    for child in psutil.Process().children(recursive=True):
        try:
            if child.status() != psutil.STATUS_ZOMBIE and "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
        except psutil.NoSuchProcess:
            pass
    return out


def gone(pid: int) -> bool:
    """The process has exited (a zombie counts: its reaper is whoever adopted it)."""
    if psutil is not None:
        return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def assert_all_stopped():
    assert multiprocessing.active_children() == []
    assert live_children() == []
    assert not dist.is_initialized()


@pytest.fixture(scope="module")
def reference(tiny_qwen3):
    llm = make(tiny_qwen3)
    return greedy(llm), greedy(llm, PROMPTS[::-1])


@pytest.mark.parametrize("prefix_caching,async_scheduling", [(False, False), (True, False), (False, True)])
def test_two_ranks_match_one(tiny_qwen3, reference, prefix_caching, async_scheduling):
    # with prefix caching, also chunked prefill: prompts are split over steps and cached blocks reused;
    # with async scheduling, look-ahead steps take their input ids from rank 0 by broadcast
    extra = {"chunked_prefill": True, "max_num_batched_tokens": 16} if prefix_caching else {}
    llm = make(
        tiny_qwen3, tensor_parallel_size=2, prefix_caching=prefix_caching, async_scheduling=async_scheduling, **extra
    )
    try:
        assert len(live_children()) == 1
        assert greedy(llm) == reference[0]
        assert greedy(llm, PROMPTS[::-1]) == reference[1]
        counters = llm.engine.counters()
        assert counters["num_kv_blocks"] == 64
        assert (counters["cached_prompt_tokens"] > 0) == prefix_caching
        assert (counters["ahead_steps"] > 0) == async_scheduling
    finally:
        llm.close()
    assert_all_stopped()


def ran_mixed_steps(trace) -> bool:
    return any(step.kind == "mixed" for step in trace)


def ran_pairs(trace) -> bool:
    return max(step.batch_size for step in trace) == 2


@pytest.mark.parametrize(
    "scheduler,options,ran_as_scheduled",
    [
        # prompt chunks of 16 tokens beside the decode rows of the sequences already running
        ("mixed", {"max_num_batched_tokens": 16, "async_scheduling": False}, ran_mixed_steps),
        # two sequences at a time, each pair run to its end before the next is admitted
        ("static", {"max_num_seqs": 2}, ran_pairs),
    ],
)
def test_two_ranks_match_one_with_each_scheduler(tiny_qwen3, reference, scheduler, options, ran_as_scheduled):
    """scheduler=mixed and static on two ranks give one rank's greedy tokens (with the continuous scheduler:
    the three schedule differently but compute the same tokens, tests/unit/scheduler/test_properties.py)."""
    llm = make(tiny_qwen3, tensor_parallel_size=2, scheduler=scheduler, **options)
    try:
        assert greedy(llm) == reference[0]
        assert ran_as_scheduled(llm.engine.stats.trace)
    finally:
        llm.close()
    assert_all_stopped()


def test_fp8_kv_cache_on_two_ranks_matches_one(tiny_qwen3):
    """kv_cache_dtype=fp8: each rank quantizes and scales its own kv heads, as one rank does all of them."""
    one = greedy(make(tiny_qwen3, kv_cache_dtype="fp8"))
    llm = make(tiny_qwen3, kv_cache_dtype="fp8", tensor_parallel_size=2)
    try:
        assert greedy(llm) == one
        assert llm.engine.counters()["kv_cache_dtype"] == "float8_e4m3fn"
    finally:
        llm.close()
    assert_all_stopped()


def test_random_weights_are_one_model_across_ranks(tiny_qwen3):
    """Random weights are drawn per checkpoint tensor and sliced, so tp=2 runs the model tp=1 runs."""
    from omegaconf import OmegaConf

    conf = os.path.join(ROOT, "conf", "model", "qwen3-tiny.yaml")
    arch = OmegaConf.to_container(OmegaConf.load(conf).architecture)
    options = dict(
        architecture=arch, random_weights="always", dtype="float64", max_model_len=256, num_kv_blocks=64, block_size=8
    )
    single = greedy(LLM(None, **options))
    llm = LLM(None, tensor_parallel_size=2, **options)
    try:
        assert greedy(llm) == single
    finally:
        llm.close()
    assert_all_stopped()


def test_size_that_does_not_divide_the_heads_is_refused(tiny_qwen3):
    with pytest.raises(ConfigError) as info:
        make(tiny_qwen3, tensor_parallel_size=3)
    assert info.value.switch == "tensor_parallel_size"
    assert "num_attention_heads (4)" in str(info.value)
    assert_all_stopped()


@pytest.mark.parametrize("point", ["load", "step3"])
def test_worker_failure_surfaces_once_and_stops_every_rank(tiny_qwen3, monkeypatch, point):
    monkeypatch.setenv(FAIL_ENV, f"1:{point}")
    llm = None
    with pytest.raises(WorkerError) as info:
        llm = make(tiny_qwen3, tensor_parallel_size=2)
        greedy(llm)
    assert (llm is None) == (point == "load")
    message = str(info.value)
    assert message.startswith("tensor-parallel rank 1 failed:")
    assert f"deliberate failure of rank 1 at {point}" in message
    assert message.count("Traceback") == 1
    assert info.value.__suppress_context__ or info.value.__context__ is None  # shown once, not chained
    assert_all_stopped()
    if llm is not None:
        with pytest.raises(RuntimeError, match="closed"):
            greedy(llm)


def test_interrupt_on_rank_zero_stops_workers_stuck_in_a_collective(tiny_qwen3):
    llm = make(tiny_qwen3, tensor_parallel_size=2)
    rank0 = llm.engine.runner.rank0
    forward, calls = rank0.step_outputs, []

    def interrupted(*args):
        calls.append(1)
        if len(calls) == 3:  # rank 1 already has this step and waits in the first all-reduce
            raise KeyboardInterrupt
        return forward(*args)

    rank0.step_outputs = interrupted
    with pytest.raises(KeyboardInterrupt):
        greedy(llm)
    assert_all_stopped()


def test_garbage_collection_stops_workers(tiny_qwen3):
    llm = make(tiny_qwen3, tensor_parallel_size=2)
    assert len(live_children()) == 1 and dist.is_initialized()
    del llm
    gc.collect()
    assert_all_stopped()


SCRIPT = """
import os, signal, sys, threading, time
from allmos import LLM, SamplingParams
llm = LLM({folder!r}, dtype="float64", max_model_len=256, num_kv_blocks=64, block_size=8, tensor_parallel_size=2)
print("workers", *[p.pid for p in llm.engine.runner.group.procs], flush=True)
threading.Timer(1.0, os.killpg, (0, signal.SIGINT)).start()  # Ctrl-C in a terminal: every process of the group
while True:
    llm.generate([[1, 2, 3]] * 4, SamplingParams(temperature=0, max_tokens=200, ignore_eos=True), use_tqdm=False)
"""


def test_ctrl_c_stops_every_process(tiny_qwen3):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(SCRIPT.format(folder=tiny_qwen3))],
        env=env,
        start_new_session=True,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in proc.stderr and proc.stderr.count("Traceback") == 1, proc.stderr
    workers = [int(pid) for pid in proc.stdout.split("workers", 1)[1].split()]
    assert all(gone(pid) for pid in workers)
