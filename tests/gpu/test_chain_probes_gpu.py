"""The decode-chain microbenchmarks run end to end on a GPU: rows_chain (the four projections at a few to a
few hundred rows, with a gemm_bench sweep's configs, and its deferred-norm variant), overlap_probe (two
half-batches on two streams), gemm_bench's --pdl timing and persistent_chain (every layer's batch-1
projections in one persistent kernel, checked against its reference before it is timed) and l2_side_stream (the
batch-1 chain with a second stream fetching into the L2 ahead of it, its output unchanged). Skipped without CUDA."""

import json
import subprocess
import sys

import pytest
from repo_paths import ROOT
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()


def run_tool(module: str, *args: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", f"allmos.microbench.{module}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_gemm_bench_times_the_triton_gemms_under_pdl(tmp_path):
    run_tool(
        "gemm_bench", "--quick", "--pdl", "--rows", "16,64", "--projections", "o,silu+down", "--out", str(tmp_path)
    )
    rows = json.loads((tmp_path / "gemm_bench.json").read_text())["rows"]
    assert [(r["projection"], r["rows"], r["pdl"]) for r in rows] == [
        ("o", 16, True),
        ("o", 64, True),
        ("silu+down", 16, True),
        ("silu+down", 64, True),
    ]
    assert all(r["torch_ms"] > 0 and r["default_ms"] > 0 for r in rows)


def test_rows_chain_times_every_variant_at_default_and_swept_configs(tmp_path):
    config = {"block_m": 16, "block_n": 64, "block_k": 128, "num_stages": 3, "num_warps": 4, "split_k": 2}
    names = ("rmsnorm+qkv", "o", "rmsnorm+gate_up", "silu+down")
    sweep = {"rows": [{"projection": name, "rows": 16, "best_config": config} for name in names]}
    (tmp_path / "sweep.json").write_text(json.dumps(sweep))
    out = tmp_path / "out"
    run_tool(
        "rows_chain", "--layers", "2", "--rows", "16,48", "--configs", str(tmp_path / "sweep.json"), "--out", str(out)
    )
    result = json.loads((out / "rows_chain.json").read_text())
    floor = result["weights_floor_us_per_layer"]
    at_16, at_48 = result["rows"]
    variants = {f"{configs}_{v}_us" for configs in ("default", "swept") for v in ("plain", "pdl")}
    assert variants <= set(at_16) and at_16["swept_configs"]["o"] == config
    assert "swept_plain_us" not in at_48  # the sweep has no 48-row entries: defaults only
    assert all(at_16[key] > floor for key in variants | {"torch_us"})


def test_rows_chain_times_the_deferred_norm_variant_beside_torch(tmp_path):
    """--variants torch,deferred: the deferred layer passes its check against the torch layer (bf16 tolerances)
    and is timed beside it; the Triton variants do not run."""
    run_tool("rows_chain", "--layers", "2", "--rows", "16,64", "--variants", "torch,deferred", "--out", str(tmp_path))
    result = json.loads((tmp_path / "rows_chain.json").read_text())
    floor = result["weights_floor_us_per_layer"]
    for row in result["rows"]:
        assert {key for key in row if key.endswith("_us")} == {"torch_us", "deferred_us"}
        assert row["torch_us"] > floor and row["deferred_us"] > floor


def test_overlap_probe_reports_each_arrangement(tmp_path):
    run_tool("overlap_probe", "--batch", "4,40", "--context", "300", "--layers", "2", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "overlap_probe.json").read_text())["rows"]
    assert [r["batch"] for r in rows] == [4, 40]
    for row in rows:
        timed = ("serial_us", "halves_one_stream_us", "two_streams_us", "two_streams_alternating_us")
        assert all(row[key] > row["floor_us"] > 0 for key in timed), row
        assert row["whole"]["attention_us"] > 0 and row["half"]["projections_us"] > 0


def test_persistent_chain_checks_then_times_each_variant_beside_the_kernel_per_gemv_chain(tmp_path):
    """All SMs' programs, the grid barrier for real: each variant matches the torch reference (persistent_chain
    raises on a wrong barrier count) and is timed beside layer_chain's GEMVs."""
    run_tool("persistent_chain", "--layers", "4", "--warps", "8", "--out", str(tmp_path))
    rows = json.loads((tmp_path / "persistent_chain.json").read_text())["rows"]
    names = [r["variant"] for r in rows]
    assert names == [
        "kernel per GEMV, pdl=False",
        "kernel per GEMV, pdl=True",
        "persistent, 8 warps, prefetch=registers",
        "persistent, 8 warps, prefetch=none",
        "persistent, 8 warps, prefetch=l2",
        "persistent, 8 warps, no barrier (wrong results: timing only)",
    ]
    assert all(r["us_per_layer"] > 0 for r in rows)
    assert all(r["max_rel_error"] < 2e-2 for r in rows[2:5])


def test_persistent_chain_with_attention_checks_then_times_it_beside_the_engines_batch_1_chain(tmp_path):
    """The attention phase (q/k norm, RoPE, the K/V store, split softmax merged by the last split) on all SMs:
    each variant matches the torch reference before it is timed beside layer_chain's chain with attention."""
    run_tool("persistent_chain", "--layers", "2", "--context", "300", "--warps", "8", "--out", str(tmp_path))
    result = json.loads((tmp_path / "persistent_chain.json").read_text())
    rows = result["rows"]
    assert result["context"] == 300 and len(rows) == 7
    assert rows[2]["variant"] == "kernel per GEMV, rope in the qkv GEMV (the engine's batch-1 path), pdl=True"
    assert [r["variant"].split("prefetch=")[-1] for r in rows[3:6]] == ["registers", "none", "l2"]
    assert all(r["max_rel_error"] < 2e-2 for r in rows[3:6])


def test_l2_side_stream_times_each_mode_and_leaves_the_chains_output_unchanged(tmp_path):
    run_tool(
        "l2_side_stream", "--layers", "2", "--context", "512", "--ahead", "2", "--modes", "bulk,load", "--out",
        str(tmp_path),
    )  # fmt: skip
    rows = json.loads((tmp_path / "l2_side_stream.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["no side stream", "bulk, ahead 2", "load, ahead 2", "no side stream, again"]
    assert all(r["us_per_layer"] > 0 for r in rows)
    assert all(r["output_identical"] for r in rows[1:-1])
