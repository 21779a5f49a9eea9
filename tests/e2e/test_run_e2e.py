"""`python run.py` end to end, in a subprocess, as a user runs it."""

import json
import os
import subprocess
import sys

import pytest
from repo_paths import ROOT


def run(tmp_path, *overrides, flags=(), multirun=False):
    args = [
        sys.executable,
        "run.py",
        *(["-m"] if multirun else []),
        *overrides,
        f"hydra.run.dir={tmp_path}/run",
        f"hydra.sweep.dir={tmp_path}/sweep",
        *flags,
    ]
    env = dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache"))
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)


def test_smoke_run_writes_a_complete_record(tmp_path):
    proc = run(tmp_path, "model=qwen3-tiny", "workload=smoke", "device=cpu")
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "ok" and record["weights"] == "random"
    assert record["switches"]["attention"] == "sdpa" and record["model"] == "qwen3-tiny"
    assert record["env"]["packages"]["torch"] and "git_commit" in record["env"]
    assert len(record["env"]["source_hash"]) == 12
    m = record["metrics"]
    assert m["output_tokens"] > 0 and m["output_tok_s"] > 0 and m["num_steps"] > 0
    assert m["peak_kv_blocks"] > 0 and 0.0 <= m["prefix_hit_rate"] <= 1.0
    assert record["counters"]["eager_forwards"] == m["num_steps"]
    assert (tmp_path / "run" / "trace.csv").read_text().startswith("step,kind,")
    assert "output tok/s" in proc.stdout
    log = (tmp_path / "run" / "run.log").read_text()  # the worker's phases reach the job's log
    assert "warm-up" in log and "correctness probe: done" in log and "workload smoke" in log
    for step in ("engine: building: done", "weights: drawing random values: done", "KV cache: sizing"):
        assert step in log, step  # each long phase of building the engine, timed on its own
    probe = record["correctness"]
    assert (probe["verdict"], probe["passed"]) in {("pass", True), ("reference", None)}  # reference: all off
    assert probe["first_divergence"] == [None] * 4
    assert os.path.exists(probe["reference"])


def test_serving_run_writes_latency_percentiles_and_requests_csv(tmp_path):
    proc = run(
        tmp_path,
        "+machine=cpu",
        "model=qwen3-tiny",
        "workload=serving",
        "workload.num_requests=6",
        "workload.request_rate=30",
        "workload.length_mix=null",
        "workload.input_len_min=16",
        "workload.input_len_max=48",
        "workload.output_len_min=4",
        "workload.output_len_max=8",
        "workload.max_concurrency=3",
        "slo.ttft_ms=30000",
        "probe=false",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    m = record["metrics"]
    assert m["num_requests"] == 6 and m["itl_ms_p99"] > 0 and m["ttft_ms_p90"] > 0 and m["e2e_ms_p50"] > 0
    assert m["goodput_req_s"] == m["request_s"] and m["peak_concurrent_requests"] <= 3
    assert record["slo"]["ttft_ms"] == 30000 and record["workload_spec"]["kind"] == "serving"
    lines = (tmp_path / "run" / "requests.csv").read_text().splitlines()
    assert (
        lines[0].startswith("request,seq_id,priority,arrival_s,admitted_s,first_token_s,finish_s,") and len(lines) == 7
    )
    assert "p99: TTFT" in proc.stdout and "goodput" in proc.stdout


def test_refused_switch_exits_non_zero_naming_it(tmp_path):
    proc = run(tmp_path, "model=qwen3-tiny", "workload=smoke", "device=cpu", "cuda_graphs=true")
    assert proc.returncode != 0
    assert "cuda_graphs" in proc.stdout + proc.stderr
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "failed" and "cuda_graphs" in record["error"]


@pytest.mark.parametrize("flag", ["--cfg job", "--info"])
def test_hydra_flags_work(tmp_path, flag):
    proc = run(tmp_path, "model=qwen3-tiny", flags=flag.split())
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_bare_hydra_flags_work_on_every_machine():
    """No overrides at all: the CPU machine default must not land after --info (which takes a value)."""
    import yaml

    for flags in (["--info"], ["--help"]):
        proc = subprocess.run([sys.executable, "run.py", *flags], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "CPU ones" not in proc.stdout
    proc = subprocess.run(
        [sys.executable, "run.py", "--cfg", "job"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    cfg = yaml.safe_load(proc.stdout)  # valid YAML: banners go to stderr
    assert cfg["mode"] == "bench" and "attention" in cfg
