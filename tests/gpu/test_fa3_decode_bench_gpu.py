"""fa3_decode_bench on a GPU with FA3 installed: FA3's FP8 decode computes what its bf16 decode computes on the same
e4m3 values (so its timing is of a working call), and the tool times every variant. Skipped without CUDA or FA3."""

import json
import subprocess
import sys

import pytest
import torch
from repo_paths import ROOT

pytestmark = pytest.mark.gpu

if not torch.cuda.is_available():
    pytest.skip("needs a CUDA GPU", allow_module_level=True)
fa3 = pytest.importorskip("flash_attn_interface", reason="needs FA3 (../shared/device/wheels.sh --fa3)")

from allmos.microbench.fa3_decode_bench import fa3_calls  # noqa: E402


def test_fa3_fp8_decode_agrees_with_its_bf16_decode_on_the_same_values():
    torch.manual_seed(0)
    (call,), _ = fa3_calls(4, 700, True, fa3.flash_attn_with_kvcache, sets=1)
    q, k, v = call.args
    got = call().float()
    bf16 = {name: value for name, value in call.keywords.items() if not name.endswith("descale")}
    want = fa3.flash_attn_with_kvcache(q.to(torch.bfloat16), k.to(torch.bfloat16), v.to(torch.bfloat16), **bf16)
    error = (got - want.float()).norm(dim=-1) / want.float().norm(dim=-1)
    assert error.max() < 0.1, error.max()


def test_fa3_decode_bench_times_every_variant(tmp_path):
    out = tmp_path / "fa3.json"
    args = [sys.executable, "-m", "allmos.microbench.fa3_decode_bench", "--batches", "16", "--context", "512"]
    proc = subprocess.run([*args, "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [r["variant"] for r in rows] == ["fa3_bf16", "fa3_fp8", "ours_bf16", "ours_fp8"]
    assert all(r["ms"] > 0 and 0 < r["share_of_copy"] < 2 for r in rows)
