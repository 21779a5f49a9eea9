"""The engine with Triton attention and KV store, on CPU through Triton's interpreter, in its own
process (TRITON_INTERPRET must be set before triton is imported)."""

import json
import os
import subprocess
import sys

import pytest
from repo_paths import ROOT, TESTS

pytest.importorskip("triton")
pytestmark = pytest.mark.interpreter


def test_triton_engine_matches_sdpa_under_interpreter(tiny_qwen3):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, os.path.join(TESTS, "helpers", "triton_engine_script.py"), tiny_qwen3],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["triton"] == out["reference"]
    assert out["triton_prefix"] == out["reference"]
    assert out["triton_rope"] == out["reference"] and out["triton_rope_counters"]["rope"] == "triton"
    assert out["triton_sampler"] == out["reference"] and out["triton_sampler_counters"]["sampler"] == "triton"
    assert out["triton_linear"] == out["reference"] and out["triton_linear_counters"]["linear"] == "triton"
    assert out["triton_rope_unfused"] == out["reference"]
    assert out["triton_fuse_rope"] == out["reference"] == out["triton_rope"]
    assert (
        out["triton_fuse_rope_counters"]["decode_fuses_rope"] and not out["triton_rope_counters"]["decode_fuses_rope"]
    )
    assert (
        out["triton_rope_counters"]["kv_store_in_rope"] and not out["triton_rope_unfused_counters"]["kv_store_in_rope"]
    )
    assert out["triton_mixed"] == out["reference"] and out["triton_mixed_counters"]["mixed_steps"] > 0
    for name in ("triton_qkv_rope", "triton_qkv_rope_store_after"):
        assert out[name] == out["reference"] and out[name + "_counters"]["rope_in_qkv"], name
    assert not out["triton_linear_counters"]["rope_in_qkv"]
    for name in (
        "triton",
        "triton_prefix",
        "triton_rope",
        "triton_rope_unfused",
        "triton_fuse_rope",
        "triton_sampler",
        "triton_linear",
        "triton_qkv_rope",
        "triton_qkv_rope_store_after",
        "triton_mixed",
    ):
        assert out[name + "_single"] == out["reference_single"], name
    assert out["triton_counters"]["attention_backend"] == "triton"
    assert out["triton_prefix_counters"]["cached_prompt_tokens"] > 0


def test_fp8_kv_cache_through_the_triton_kernels_under_interpreter(tiny_qwen3):
    """kv_cache_dtype=fp8: the Triton store and the rope kernel's fused store write the pages the torch
    store writes, the Triton kernels read them (and their scales) after prefix caching and preemption."""
    from fp8_checks import assert_close_to

    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=ROOT)
    script = os.path.join(TESTS, "helpers", "fp8_engine_script.py")
    proc = subprocess.run([sys.executable, script, tiny_qwen3], capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    # the same pages (bytes and scales) whichever store wrote them, and whether a prefix was cached
    assert out["triton"] == out["triton_attention"] == out["triton_prefix"]
    assert out["triton_prefix_counters"]["cached_prompt_tokens"] > 0
    assert out["triton_preempt_counters"]["preemptions"] > 0
    assert out["triton_rope_counters"]["kv_store_in_rope"]
    assert out["triton_counters"]["kv_cache_dtype"] == "float8_e4m3fn"
    for name in ("sdpa", "triton", "triton_rope", "triton_preempt"):
        for auto_run, fp8_run in zip(out["auto"], out[name]):
            assert_close_to(auto_run, fp8_run)
