"""The decode-chain probes' host side: rows_chain picks a gemm_bench sweep's configs per row count, overlap_probe
refuses a batch it cannot halve, and both refuse to start without a GPU (their GPU runs:
tests/gpu/test_chain_probes_gpu.py)."""

import json
import subprocess
import sys

import pytest
import torch
from repo_paths import ROOT

from allmos.microbench.rows_chain import PROJECTIONS, swept_configs


def test_rows_chain_takes_a_sweeps_best_config_of_each_projection_at_its_row_count(tmp_path):
    rows = [
        {"projection": bench, "rows": 64, "best_config": {"split_k": i}}
        for i, (bench, _, _) in enumerate(PROJECTIONS.values())
    ]
    rows.append({"projection": "o", "rows": 16, "best_config": {"split_k": 8}})  # o alone at 16 rows
    path = tmp_path / "gemm_bench.json"
    path.write_text(json.dumps({"rows": rows}))
    assert swept_configs(str(path), 64) == {
        "qkv": {"split_k": 0},
        "o": {"split_k": 1},
        "gate_up": {"split_k": 2},
        "down": {"split_k": 3},
    }
    assert swept_configs(str(path), 16) is None  # a chain runs swept configs only when every projection has one
    assert swept_configs(None, 64) is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
@pytest.mark.parametrize("module", ["rows_chain", "overlap_probe"])
def test_chain_probes_refuse_to_start_without_a_gpu(module, tmp_path):
    args = [sys.executable, "-m", f"allmos.microbench.{module}", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and f"{module} needs a CUDA GPU" in proc.stderr


def test_overlap_probe_refuses_a_batch_it_cannot_halve(tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.overlap_probe", "--batch", "64,7", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--batch: every batch must be even and at least 2; got [64, 7]" in proc.stderr
