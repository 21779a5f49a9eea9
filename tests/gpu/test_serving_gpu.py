"""A serving job on CUDA (Qwen3-0.6B, random weights where its folder is absent) with everything on
(compile aside, for time): arrivals, max_concurrency, CUDA graphs and look-ahead
steps together; GPU energy and clocks from NVML where nvidia-ml-py is installed."""

import csv
import importlib.util

import pytest
from runtime_harness import spec_of

from allmos.bench.job import run_benchmark

pytestmark = pytest.mark.gpu

EVERYTHING_ON = [
    "model=qwen3-0.6b",
    "device=cuda",
    "attention=triton",
    "kv_store=triton",
    "rope=triton",
    "linear=triton",
]
EVERYTHING_ON += ["sampler=triton", "cuda_graphs=true", "compile=false", "prefix_caching=true", "async_scheduling=true"]
EVERYTHING_ON += ["gpu_memory_utilization=0.3", "max_num_seqs=16"]  # other gpu tests share the device
SERVING = ["workload=serving", "workload.num_requests=24", "workload.request_rate=60", "workload.max_concurrency=8"]
SERVING += ["workload.length_mix=[{share: 0.75, input_len_min: 16, input_len_max: 200, output_len_min: 8,"
            " output_len_max: 48}, {share: 0.25, input_len_min: 600, input_len_max: 900, output_len_min: 4,"
            " output_len_max: 16}]", "slo.ttft_ms=5000", "slo.tpot_ms=200", "probe=false"]  # fmt: skip


def test_serving_on_cuda_records_latencies_energy_and_requests(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMOS_CACHE", str(tmp_path / "cache"))
    record = run_benchmark(spec_of(*EVERYTHING_ON, *SERVING, folder=str(tmp_path)), str(tmp_path))
    m, counters = record["metrics"], record["counters"]
    assert record["status"] == "ok" and m["num_requests"] == 24 and m["peak_concurrent_requests"] <= 8
    assert m["itl_ms_p99"] > 0 and m["ttft_ms_p99"] >= m["ttft_ms_p50"] > 0 and m["goodput_req_s"] is not None
    assert counters["graph_forwards"] > 0 and counters["ahead_steps"] > 0  # decode steps replayed, look-ahead ran
    if importlib.util.find_spec("pynvml") is not None:
        assert record["energy_source"].startswith("NVML"), record["energy_source"]
        assert m["energy_j"] is not None and m["energy_j"] >= 0 and m["gpu_sm_clock_mhz"] > 0
    else:
        assert m["energy_j"] is None and "pynvml" in record["energy_source"]
    with open(tmp_path / "requests.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and all(float(r["admitted_s"]) >= float(r["arrival_s"]) for r in rows)
