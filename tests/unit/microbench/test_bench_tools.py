"""The repeatable measurement scripts run end to end on the tiny model (their figures matter on a GPU)."""

import json
import subprocess
import sys

import pytest
import torch
from repo_paths import ROOT


def test_step_profiler_attributes_every_step(tmp_path):
    out = tmp_path / "profile.json"
    args = [
        sys.executable,
        "-m",
        "allmos.microbench.profile_steps",
        "--num-requests",
        "6",
        "--max-len",
        "24",
        "--arch",
        "conf/model/qwen3-tiny.yaml",
        "--out",
        str(out),
        "--kernels",
        "2",
        "--kernels-after",
        "1",
        "device=cpu",
        "max_model_len=256",
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["steps"]["prefill"] >= 1 and result["steps"]["decode"] >= 1
    for kind in ("prefill", "decode"):
        assert set(result["seconds"][kind]) == {"schedule", "prepare", "step", "readback", "postprocess"}
    assert "decode" in proc.stdout and "real wall" in proc.stdout
    assert result["kernel_breakdown"]["steps"] == 2 and len(result["kernel_breakdown"]["batch_sizes"]) == 2


def test_step_profiler_refuses_tensor_parallel():
    args = [sys.executable, "-m", "allmos.microbench.profile_steps", "tensor_parallel_size=2"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "tensor_parallel_size=1" in proc.stderr


def test_step_time_reports_milliseconds_per_decode_step(tmp_path):
    """A row per batch of --batch, measured on one engine; a bad --batch is a one-line usage error."""
    out = tmp_path / "step_time.json"
    args = [
        sys.executable,
        "-m",
        "allmos.microbench.step_time",
        "--batch",
        "1",
        "3",
        "--arch",
        "conf/model/qwen3-tiny.yaml",
        "--graphs",
        "false",
        "--context",
        "20",
        "--steps",
        "5",
        "--out",
        str(out),
        "device=cpu",
        "max_model_len=256",
        "async_scheduling=true",
    ]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(out.read_text())["rows"]
    assert [row["batch"] for row in rows] == [1, 3]
    assert all(row["cuda_graphs"] is False and row["ms_per_step"] > 0 for row in rows)
    assert proc.stdout.count("ms per decode step") == 2 and "batch 3 context 20" in proc.stdout
    refused = subprocess.run(args[:-1] + ["cuda_graphs=true"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0 and "--graphs" in refused.stderr
    bad_batch = args[:4] + ["0"] + args[6:]
    refused = subprocess.run(bad_batch, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert refused.returncode == 2 and "--batch takes positive batch sizes" in refused.stderr


def test_source_hash_follows_the_code(tmp_path):
    from allmos.bench.environment import source_hash

    (tmp_path / "allmos").mkdir()
    (tmp_path / "conf").mkdir()
    module = tmp_path / "allmos" / "a.py"
    module.write_text("x = 1\n")
    (tmp_path / "conf" / "c.yaml").write_text("k: 1\n")
    (tmp_path / "allmos" / "notes.txt").write_text("not code")
    first = source_hash(str(tmp_path))
    assert len(first) == 12 and first == source_hash(str(tmp_path))
    (tmp_path / "allmos" / "notes.txt").write_text("changed, still not code")
    assert source_hash(str(tmp_path)) == first
    module.write_text("x = 2\n")
    assert source_hash(str(tmp_path)) != first


def test_bench_switches_keep_a_plugin_name_next_to_its_options():
    from allmos.microbench.switches import parse_switches

    parsed = parse_switches(["attention.fused_combine=false", "attention=triton", "compile=true", "linear=triton"])
    assert parsed == {
        "attention": {"fused_combine": False, "name": "triton"},
        "compile": True,
        "linear": {"name": "triton"},
    }
    assert parse_switches(["sampler=gumbel"], {"sampler": "triton", "rope": "triton"}) == {
        "sampler": {"name": "gumbel"},
        "rope": "triton",
    }
    with pytest.raises(ValueError, match="key=value"):
        parse_switches(["compile"])


def test_kernel_breakdown_counts_kernels_not_the_ops_that_launched_them():
    """An inductor kernel's launch row carries the kernel's own name (and its device time) on the host's
    side: only the device-side row counts. Without a device type, names tell the host's rows apart."""
    from types import SimpleNamespace as Event

    from allmos.microbench.profile_steps import is_kernel

    cuda, cpu = torch.autograd.DeviceType.CUDA, torch.autograd.DeviceType.CPU
    inductor = "triton_poi_fused_mul_silu_split_0"
    assert is_kernel(Event(key=inductor, device_type=cuda)) and not is_kernel(Event(key=inductor, device_type=cpu))
    assert not is_kernel(Event(key="cuLaunchKernelEx", device_type=cpu))
    for name in ("nvjet_sm90_tst_64x8_64x16_4x1_v_bz_TNT", "_decode_split_kernel", "Memcpy DtoH (Device -> Pinned)"):
        assert is_kernel(Event(key=name))
    for name in ("aten::mm", "cudaGraphLaunch", "cudaEventSynchronize", "cuLaunchKernelEx"):
        assert not is_kernel(Event(key=name))


def test_fp8_scaling_study_measures_each_scheme():
    """kv_fp8_scales' figures on synthetic K: per (token, kv head) scales never saturate and keep e4m3's
    ~2.5% error at any magnitude; one static scale of 1.0 saturates values beyond 448."""
    import torch

    from allmos.microbench.kv_fp8_scales import measure

    x = torch.randn(2, 64, 4, 32, generator=torch.Generator().manual_seed(0))
    for magnitude in (1e-3, 1.0, 1e3):
        m = measure(x * magnitude)
        assert m["per (token, kv head)"]["saturated"] == 0 and m["per (token, kv head)"]["rel_rms"] < 0.035
    assert measure(x * 1e3)["static 1.0"]["saturated"] > 0.5
