"""The step timeline's arithmetic over kernel intervals (the profiling itself needs a GPU), and the host-only
step timer."""

import pytest

from allmos import LLM
from allmos.microbench.step_timeline import busy_time, gaps, print_summary, step_floors, summarise

ROWS = [(0.0, 10.0, "a"), (5.0, 12.0, "b"), (15.0, 20.0, "c"), (30.0, 31.0, "a")]


def test_busy_time_counts_overlapping_kernels_once():
    assert busy_time(ROWS) == 10 + 2 + 5 + 1


def test_gaps_are_the_idle_stretches_longest_first_with_their_neighbours():
    assert gaps(ROWS, 5) == [
        {"us": 10.0, "after": "c", "before": "a"},
        {"us": 3.0, "after": "b", "before": "c"},
    ]


def test_summary_per_step_and_per_kernel_name():
    summary = summarise(ROWS, steps=2, top=5)
    assert summary["span_us_per_step"] == 15.5
    assert summary["busy_us_per_step"] == 9.0
    assert summary["idle_us_per_step"] == 6.5
    assert summary["kernels"][0] == {"name": "a", "calls_per_step": 1.0, "us_per_step": 5.5, "us_per_call": 5.5}
    assert summary["us_per_role"] == {"other": 5.5 + 3.5 + 2.5}  # every name counts, not only the top ones
    assert summarise(ROWS, steps=2, top=1)["us_per_role"] == summary["us_per_role"]


@pytest.mark.parametrize("kv_cache_dtype,bytes_per_value", [("auto", 4), ("fp8", 1)])
def test_floors_count_the_runners_weights_and_kv_bytes_per_token(tiny_qwen3, kv_cache_dtype, bytes_per_value):
    settings = dict(device="cpu", dtype="float32", block_size=16, max_model_len=256, max_num_batched_tokens=256)
    llm = LLM(tiny_qwen3, num_kv_blocks=8, kv_cache_dtype=kv_cache_dtype, **settings)
    try:
        runner = llm.engine.runner
        shape = runner.cache_shape
        weights = sum(p.numel() * p.element_size() for p in runner.model.parameters())
        floors = step_floors(runner, context_tokens=100, copy_bytes_per_s=1e9)
    finally:
        llm.close()
    scale_bytes = 4 if kv_cache_dtype == "fp8" else 0
    per_token = 2 * shape.num_layers * shape.num_kv_heads * (shape.head_dim * bytes_per_value + scale_bytes)
    assert floors == pytest.approx({"kv_read_us": 100 * per_token / 1e3, "weights_us": weights / 1e3})


def test_host_step_times_the_engine_around_a_runner_that_returns_at_once():
    from allmos.microbench.host_step import host_us_per_step

    assert 0 < host_us_per_step(batch=4, context=40, steps=5, switches={"async_scheduling": True}) < 1e6


def test_the_summary_prints_the_roles_beside_the_floors(capsys):
    result = {"batch": 2, "context": 8, "wall_us_per_step": 20.0, "host_wait_us_per_step": 1.0}
    result |= summarise(ROWS, steps=2, top=5, num_layers=2)
    result["floors_us"] = {"kv_read_us": 4.0, "weights_us": 6.0}
    print_summary(result)
    out = capsys.readouterr().out
    assert "by role, us/step: other 11.5" in out
    assert "at the copy bandwidth: K/V read 4.0 us, weights 6.0 us" in out
