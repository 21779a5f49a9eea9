"""The serving rate sweep: it composes as stated, and a real (tiny, CPU) sweep of it writes records in
the layout the serving report reads, which then reports them.

Needs `workload=serving` (its request-rate keys and metrics), `scheduler=mixed` and the top-level
`slo` key: these come from the serving and scheduler work of the same issue.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from repo_paths import ROOT as REPO_ROOT

from allmos.cli.schema import register_schemas
from analysis import serving

ROOT = Path(REPO_ROOT)
NAME = "serving_rate_sweep"
POINTS = {  # point: (scheduler, chunked_prefill, async_scheduling, max_num_batched_tokens)
    "continuous": ("continuous", False, True, 16384),
    "continuous_chunked": ("continuous", True, True, 2048),
    "mixed": ("mixed", True, True, 2048),
    "mixed_sync": ("mixed", True, False, 2048),
}
RATES = [4, 8, 16, 24, 32, 48, 64, 96]
# What the report reads from every successful serving record (analysis/serving.py).
RECORD_METRICS = [m for m in serving.POINT_METRICS if m != serving.ATTAINMENT]


@pytest.fixture(autouse=True)
def setup(monkeypatch):
    register_schemas()
    monkeypatch.setenv("ALLMOS_ROOT", str(ROOT))


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose(config_name="config", overrides=[f"+experiment={NAME}", *overrides], return_hydra_config=hydra)


def test_the_sweep_is_points_by_rates_by_trials():
    params = {k: str(v) for k, v in OmegaConf.to_container(composed(hydra=True).hydra.sweeper.params).items()}
    assert params["+serving_config"].split(",") == list(POINTS)
    assert sorted(POINTS) == sorted(p.stem for p in (ROOT / "experiments" / "serving_config").glob("*.yaml"))
    assert [float(r) for r in params["workload.request_rate"].split(",")] == RATES
    assert params["trial"] == "0,1,2"


@pytest.mark.parametrize("point", list(POINTS))
def test_each_point_sets_what_it_says(point):
    cfg = composed(f"+serving_config={point}", "workload.request_rate=16")
    values = (cfg.scheduler.name, cfg.chunked_prefill, cfg.async_scheduling, cfg.max_num_batched_tokens)
    assert values == POINTS[point]
    assert (cfg.experiment.name, cfg.experiment.kind, cfg.experiment.baseline) == (NAME, "serving", "continuous")
    w = cfg.workload
    assert (w.name, w.arrival, w.num_requests, w.request_rate) == ("serving", "poisson", 200, 16)
    mix = OmegaConf.to_container(w.length_mix)
    assert [c["share"] for c in mix] == [0.75, 0.25] and [c["input_len_min"] for c in mix] == [64, 2048]
    assert max(c["input_len_max"] + c["output_len_max"] for c in mix) <= 4096  # Qwen3-0.6B's default max_model_len
    assert OmegaConf.to_container(cfg.slo) == {"ttft_ms": 2000, "tpot_ms": 50, "e2e_ms": None}
    assert composed(f"+serving_config={point}", "async_scheduling=false").async_scheduling is False  # command line wins


@pytest.mark.slow
def test_real_tiny_sweep_writes_what_the_serving_report_reads(tmp_path):
    sweep = tmp_path / "sweep"
    env = dict(os.environ, ALLMOS_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1", ALLMOS_ROOT=str(ROOT))
    tiny = ["model=qwen3-tiny", "device=cpu", "num_kv_blocks=16", "attention=sdpa", "kv_store=torch", "compile=false",
            "cuda_graphs=false", "probe=false", "isolate=false", "workload.num_requests=6", "workload.length_mix=null",
            "workload.input_len_min=8", "workload.input_len_max=32", "workload.output_len_min=4",
            "workload.output_len_max=8"]  # fmt: skip
    swept = ["+serving_config=continuous,mixed", "workload.request_rate=20,inf", "trial=0"]
    proc = subprocess.run([sys.executable, str(ROOT / "run.py"), "-m", f"+experiment={NAME}", "workload=serving",
                           *tiny, *swept, f"hydra.sweep.dir={sweep}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/result.json"))]
    assert len(records) == 4 and all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    for record in records:
        missing = [m for m in RECORD_METRICS if not isinstance(record["metrics"].get(m), (int, float))]
        assert not missing, f"record lacks {missing}"
        assert record["config"]["experiment"]["kind"] == "serving" and record["config"]["point"] in POINTS
        assert record["config"]["slo"]["ttft_ms"] == 2000
        assert serving.parse_rate(record["config"]["workload"]["request_rate"]) in (20.0, math.inf)
    report = subprocess.run([sys.executable, "analysis/report.py", str(sweep)],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    assert report.returncode == 0, report.stderr[-3000:]
    markdown = (sweep / "report" / "report.md").read_text()
    assert markdown.startswith(f"# Serving report: {NAME}") and "request rates swept (req/s): 20, inf" in markdown
    assert "| continuous " in markdown and "| mixed " in markdown
    assert (sweep / "report" / "goodput_vs_rate.png").stat().st_size > 1000
