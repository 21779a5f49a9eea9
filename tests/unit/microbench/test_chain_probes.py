"""The decode-chain probes' host side: rows_chain picks a gemm_bench sweep's configs per row count, its deferred-norm
layer computes the layer it stands for, overlap_probe refuses a batch it cannot halve, l2_side_stream plans its
fetches ahead of the chain, and each refuses to start without a GPU or with a bad option (their GPU runs:
tests/gpu/test_chain_probes_gpu.py)."""

import json
import subprocess
import sys

import pytest
import torch
from repo_paths import ROOT

from allmos.layers import ops
from allmos.microbench.deferred_norm import deferred_layer, fold_norms
from allmos.microbench.rows_chain import EPS, PROJECTIONS, Q_WIDTH, layer_weights, swept_configs, torch_layer


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
@pytest.mark.parametrize("module", ["rows_chain", "overlap_probe", "persistent_chain", "l2_side_stream"])
def test_chain_probes_refuse_to_start_without_a_gpu(module, tmp_path):
    args = [sys.executable, "-m", f"allmos.microbench.{module}", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and f"{module} needs a CUDA GPU" in proc.stderr


def test_persistent_chain_refuses_a_warp_count_triton_cannot_launch(tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.persistent_chain", "--warps", "8,12", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--warps: each must be a power of 2 up to 32; got 8,12" in proc.stderr


def test_persistent_chain_refuses_an_unknown_prefetch_mode(tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.persistent_chain", "--prefetch", "l2,l3", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--prefetch: each must be one of registers, none, l2; got l2,l3" in proc.stderr


def test_overlap_probe_refuses_a_batch_it_cannot_halve(tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.overlap_probe", "--batch", "64,7", "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "--batch: every batch must be even and at least 2; got [64, 7]" in proc.stderr


def test_the_deferred_norm_layer_computes_the_layer_it_stands_for():
    """Folded norm weights, the rows scaled by 1/rms after qkv and before SiLU, the residual added inside o and
    down: in float32 the stream after the layer is the pre-norm layer's, to float32 rounding."""
    torch.manual_seed(0)
    weights = layer_weights(1, device="cpu", dtype=torch.float32)[0]
    x, residual = torch.randn(5, 1024), torch.randn(5, 1024)
    out, new_residual = torch_layer(x, residual, weights, ops.Ops())
    folded = fold_norms(weights)
    assert folded["qkv"] is not weights["qkv"] and folded["o"] is weights["o"]
    h = x + residual
    got = deferred_layer(h, folded, EPS, Q_WIDTH)
    assert got is h  # in place: o and down add into the stream
    torch.testing.assert_close(got, out + new_residual, rtol=1e-5, atol=1e-5)
    skipped = deferred_layer(x + residual, folded, EPS, Q_WIDTH, silu_mul=lambda g, h, eps: ops.silu_and_mul(g))
    assert not torch.allclose(skipped, got, rtol=1e-2, atol=1e-2)  # the SiLU's row scale is what finishes the norm


def test_rows_chain_refuses_an_unknown_variant(tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.rows_chain", "--out", str(tmp_path), "--variants", "torch,fused"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "--variants: each of torch, deferred, plain, pdl; got torch,fused" in proc.stderr


def test_the_l2_side_stream_fetches_each_step_ahead_once_the_step_before_it_has_finished():
    from allmos.microbench.l2_side_stream import prefetch_plan

    reads = [["qkv0"], [], ["o0"], ["gate_up0"], ["down0"], ["qkv1"], []]  # no attention kernel at context 0
    assert prefetch_plan(reads, 2) == ([0], {0: 2, 1: 3, 2: 4, 3: 5})
    assert prefetch_plan(reads, 3) == ([0, 2], {0: 3, 1: 4, 2: 5})
    with pytest.raises(ValueError, match="ahead must be >= 2"):
        prefetch_plan(reads, 1)


def test_the_l2_side_stream_fetches_only_whole_16_byte_spans():
    from allmos.microbench.l2_side_stream import check_fetchable

    check_fetchable([torch.empty(4096, 1024, dtype=torch.bfloat16), torch.empty(2, 256, 8, 128)])
    with pytest.raises(ValueError, match=r"whole 16-byte pieces; got \(3, 5\)"):
        check_fetchable([torch.empty(3, 5, dtype=torch.bfloat16)])
    with pytest.raises(ValueError, match="whole 16-byte pieces"):
        check_fetchable([torch.empty(64, 64, dtype=torch.bfloat16).t()])


@pytest.mark.parametrize(
    ("option", "message"),
    [("--ahead=2,1", "--ahead: each must be >= 2"), ("--modes=bulk,tma", "--modes: each must be one of bulk, load")],
)
def test_the_l2_side_stream_refuses_a_bad_option(option, message, tmp_path):
    args = [sys.executable, "-m", "allmos.microbench.l2_side_stream", option, "--out", str(tmp_path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and message in proc.stderr
