"""A serving job in-process on the tiny model: every latency metric in the record, the SLOs it used,
requests.csv beside result.json, and the vLLM export of it."""

import csv
import json

import pytest
from runtime_harness import spec_of

from allmos.bench import vllm_export
from allmos.bench.job import run_benchmark
from allmos.bench.latency import REQUEST_COLUMNS
from allmos.cli.summary import summary_lines

SERVING = [
    "workload=serving",
    "workload.num_requests=6",
    "workload.request_rate=40",
    "workload.length_mix=[{share: 0.5, input_len_min: 8, input_len_max: 24, output_len_min: 3, output_len_max: 6},"
    "{share: 0.5, input_len_min: 100, input_len_max: 140, output_len_min: 2, output_len_max: 4, priority: 3}]",
    "workload.max_concurrency=4",
    "workload.warmup_requests=0",
    "slo.ttft_ms=60000",
    "slo.tpot_ms=60000",
    "probe=false",
]
METRIC_KEYS = [f"{m}_ms_{s}" for m in ("ttft", "tpot", "itl", "e2e") for s in ("mean", "std", "p50", "p90", "p99")]
METRIC_KEYS += ["ttft_ms_median", "ttft_ms_max", "tpot_ms_median", "request_s", "goodput_req_s", "slo_attainment"]
METRIC_KEYS += ["num_requests", "peak_concurrent_requests", "peak_output_tok_s", "output_tok_s", "total_tok_s"]
METRIC_KEYS += ["energy_j", "energy_j_per_output_token", "gpu_power_w_mean", "gpu_sm_clock_mhz", "gpu_mem_clock_mhz"]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serving")
    return run_benchmark(spec_of(*SERVING, folder=str(folder)), str(folder)), folder


def test_the_record_has_every_latency_metric_and_the_slos_it_used(served):
    record, folder = served
    m = record["metrics"]
    assert set(METRIC_KEYS) <= set(m), set(METRIC_KEYS) - set(m)
    assert m["num_requests"] == 6 and m["goodput_req_s"] == pytest.approx(m["request_s"])  # generous SLOs
    assert m["slo_attainment"] == 1.0 and 1 <= m["peak_concurrent_requests"] <= 4
    assert record["slo"] == {"ttft_ms": 60000.0, "tpot_ms": 60000.0, "e2e_ms": None}
    assert m["energy_j"] is None and record["energy_source"].startswith("unavailable: the run is on cpu")
    assert record["workload_spec"]["request_rate"] == 40.0 and record["requests_file"] == "requests.csv"
    assert json.loads((folder / "result.json").read_text())["metrics"]["itl_ms_p99"] == m["itl_ms_p99"]
    assert any(line.strip().startswith("p99: TTFT") and "goodput" in line for line in summary_lines(record))


def test_requests_csv_has_a_row_per_request(served):
    record, folder = served
    with open(folder / "requests.csv") as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert tuple(reader.fieldnames) == REQUEST_COLUMNS and [int(r["request"]) for r in rows] == list(range(6))
    for row in rows:
        arrival, admitted, first, finish = (
            float(row[k]) for k in ("arrival_s", "admitted_s", "first_token_s", "finish_s")
        )
        assert 0 < arrival <= admitted <= first <= finish <= record["metrics"]["wall_s"] + 1e-6
        assert row["met_slo"] == "True" and int(row["preemptions"]) == 0
        assert int(row["priority"]) == (3 if int(row["prompt_tokens"]) >= 100 else 0)
    assert sum(int(r["output_tokens"]) for r in rows) == record["metrics"]["output_tokens"]
    assert float(rows[-1]["arrival_s"]) == pytest.approx(6 / 40)  # the last arrives at num_requests / rate


def test_vllm_export_writes_vllm_bench_serve_fields(served, tmp_path):
    record, folder = served
    out = tmp_path / "vllm.json"
    assert vllm_export.main([str(folder / "result.json"), "-o", str(out), "--detailed"]) == 0
    exported = json.loads(out.read_text())
    m = record["metrics"]
    expected = {
        "backend": "allmos", "model_id": "qwen3-tiny", "num_prompts": 6, "request_rate": 40.0, "burstiness": 1.0,
        "max_concurrency": 4, "duration": m["wall_s"], "completed": 6, "failed": 0,
        "total_input_tokens": m["prompt_tokens"], "total_output_tokens": m["output_tokens"],
        "request_throughput": m["request_s"], "request_goodput": m["goodput_req_s"],
        "output_throughput": m["output_tok_s"], "total_token_throughput": m["total_tok_s"],
        "mean_ttft_ms": m["ttft_ms_mean"], "median_ttft_ms": m["ttft_ms_p50"], "std_ttft_ms": m["ttft_ms_std"],
        "p99_ttft_ms": m["ttft_ms_p99"], "p90_tpot_ms": m["tpot_ms_p90"], "median_itl_ms": m["itl_ms_p50"],
        "p99_itl_ms": m["itl_ms_p99"], "mean_e2el_ms": m["e2e_ms_mean"], "p99_e2el_ms": m["e2e_ms_p99"],
        "max_concurrent_requests": m["peak_concurrent_requests"], "max_output_tokens_per_s": m["peak_output_tok_s"],
    }  # fmt: skip
    assert {k: exported[k] for k in expected} == expected
    assert len(exported["date"]) == len("20261206-073000") and len(exported["latencies"]) == 6
    assert exported["input_lens"] == [int(r) for r in csv_column(folder, "prompt_tokens")]
    assert all(q >= 0 for q in exported["queue_times"])


def test_vllm_export_refuses_a_failed_record(tmp_path, capsys):
    (tmp_path / "result.json").write_text(json.dumps({"status": "failed"}))
    assert vllm_export.main([str(tmp_path / "result.json")]) == 1
    assert "only ok runs export" in capsys.readouterr().err


def csv_column(folder, name: str) -> list[str]:
    with open(folder / "requests.csv") as f:
        return [row[name] for row in csv.DictReader(f)]


def test_an_offline_workload_gets_the_same_metrics_and_requests_csv(tmp_path):
    record = run_benchmark(spec_of("probe=false", "workload.warmup_requests=0", folder=str(tmp_path)), str(tmp_path))
    m = record["metrics"]
    assert set(METRIC_KEYS) <= set(m) and m["goodput_req_s"] is None and set(record["slo"].values()) == {None}
    rows = csv_column(tmp_path, "arrival_s")
    assert len(rows) == m["num_requests"] == 4 and all(float(a) < m["wall_s"] for a in rows)


def test_records_hold_strict_json_and_a_job_with_an_infinite_rate_is_still_recognised(tmp_path):
    import json
    import math
    from types import SimpleNamespace

    from allmos.bench.record import read_record, write_record
    from allmos.cli.app import same_job

    config = {"workload": {"name": "serving", "request_rate": math.inf}, "trial": 0}
    write_record(str(tmp_path), {"status": "ok", "job": {}, "config": config, "metrics": {"x": float("nan")}})
    text = (tmp_path / "result.json").read_text()
    json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))
    record = read_record(str(tmp_path))
    assert record["config"]["workload"]["request_rate"] == "inf" and record["metrics"]["x"] == "nan"
    assert same_job(record, SimpleNamespace(config=config))  # resume and this-run checks still match
