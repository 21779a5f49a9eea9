"""Tensor parallelism with the Triton plugins, on CPU (gloo) through Triton's interpreter, in a process of
its own (TRITON_INTERPRET must be set before triton is imported, and the spawned workers inherit it)."""

import json
import os
import subprocess
import sys

import pytest
from repo_paths import ROOT, TESTS

pytest.importorskip("triton")
pytestmark = pytest.mark.interpreter


def test_two_ranks_with_the_triton_plugins_match_one(tiny_qwen3):
    """Each rank's GEMVs and its qkv rope epilogue (rope.fuse_qkv, its own heads' counters and KV pages)
    give one rank's greedy tokens, alone (one-token decode steps) and batched, and the torch plugins'; on FP8
    pages too."""
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=ROOT)
    script = os.path.join(TESTS, "helpers", "triton_tp_script.py")
    proc = subprocess.run([sys.executable, script, tiny_qwen3], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    reference = out["reference"]
    for name in ("triton_one_rank", "triton_two_ranks"):
        assert out[name]["rope_in_qkv"], name
        assert out[name]["alone"] == reference["alone"], name
        assert out[name]["batch"] == reference["batch"], name
    assert not reference["rope_in_qkv"]
    assert out["fp8_two_ranks"]["rope_in_qkv"]
    # FP8 pages: each rank scales its own kv heads as one rank does all of them, so the tokens are one rank's
    assert out["fp8_two_ranks"]["alone"] == out["fp8_one_rank"]["alone"]
    assert out["fp8_two_ranks"]["batch"] == out["fp8_one_rank"]["batch"]
