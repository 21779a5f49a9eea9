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
    assert (
        out["triton_rope_counters"]["kv_store_in_rope"] and not out["triton_rope_unfused_counters"]["kv_store_in_rope"]
    )
    assert out["triton_mixed"] == out["reference"] and out["triton_mixed_counters"]["mixed_steps"] > 0
    for name in (
        "triton",
        "triton_prefix",
        "triton_rope",
        "triton_rope_unfused",
        "triton_sampler",
        "triton_linear",
        "triton_mixed",
    ):
        assert out[name + "_single"] == out["reference_single"], name
    assert out["triton_counters"]["attention_backend"] == "triton"
    assert out["triton_prefix_counters"]["cached_prompt_tokens"] > 0
