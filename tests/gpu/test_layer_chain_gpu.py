"""The layer_chain microbenchmark (allmos/microbench/layer_chain.py) runs end to end on a GPU: figures for
both PDL settings and, with --sweep attention, one row per attention candidate. Skipped without CUDA."""

import json
import subprocess
import sys

import pytest
from repo_paths import ROOT
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()


def test_layer_chain_reports_each_setting_and_sweep_row(tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.layer_chain", "--layers", "2", "--context", "300"]
    args += ["--sweep", "attention", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "layer_chain.json").read_text())
    from allmos.microbench.layer_chain import ATTENTION_CANDIDATES

    assert 0 < result["weights_floor_us_per_layer"] < result["default_pdl_True_us"]
    assert result["default_pdl_False_us"] > 0
    assert result["weights_floor_us_per_layer"] < result["qkv_rope_pdl_True_us"]  # rope.fuse_qkv's chain
    assert [{k: r[k] for k in ("num_splits", "block_n")} for r in result["attention_sweep"]] == ATTENTION_CANDIDATES
    assert result["best_configs"]["attention"] in ATTENTION_CANDIDATES
