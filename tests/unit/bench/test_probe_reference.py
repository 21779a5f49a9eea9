"""The probe's reference is keyed by the weights' content; a job that runs the reference's own
configuration is reported as `reference`, never `pass`; probe steps stay out of the trace."""

import csv
import json
import shutil

import pytest
import torch
from models import save_tiny_model
from runtime_harness import spec_of
from safetensors.torch import load_file, save_file

from allmos import LLM
from allmos.bench.job import run_benchmark
from allmos.bench.probe import check_probe, ensure_reference, reference_path
from allmos.cli.summary import summary_lines
from allmos.config import ALL_OFF, EngineConfig

SMALL = dict(dtype="float32", device="cpu", block_size=16, num_kv_blocks=64, max_model_len=256)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMOS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_changed_weights_in_the_same_folder_get_another_reference(tmp_path):
    folder = save_tiny_model(tmp_path / "model", "qwen3")
    before = reference_path(EngineConfig.create(folder, **SMALL), "real")
    moved = shutil.copytree(folder, tmp_path / "elsewhere")
    assert reference_path(EngineConfig.create(str(moved), **SMALL), "real") == before  # content, not path
    tensors = load_file(f"{folder}/model.safetensors")
    tensors["model.norm.weight"] = torch.full_like(tensors["model.norm.weight"], float("nan"))
    save_file(tensors, f"{folder}/model.safetensors", metadata={"format": "pt"})
    assert reference_path(EngineConfig.create(folder, **SMALL), "real") != before


def test_a_job_with_the_references_configuration_is_reported_as_reference_not_pass(tmp_path, cache):
    folder = save_tiny_model(tmp_path / "model", "qwen3")
    reference = ensure_reference(EngineConfig.create(folder, **SMALL), "real")
    all_off = check_probe(LLM(folder, **SMALL, **ALL_OFF), reference)
    assert all_off["verdict"] == "reference" and all_off["passed"] is None
    optimized = check_probe(LLM(folder, **SMALL, **(ALL_OFF | {"prefix_caching": True})), reference)
    assert optimized["verdict"] == "pass" and optimized["passed"] is True


@pytest.mark.parametrize("switch,verdict", [("prefix_caching=true", "pass"), ("prefix_caching=false", "reference")])
def test_probe_steps_stay_out_of_the_trace_and_the_step_metrics(tmp_path, cache, switch, verdict):
    record = run_benchmark(spec_of("probe=true", switch, folder=str(tmp_path)), str(tmp_path))
    with open(tmp_path / "trace.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == record["metrics"]["num_steps"] == record["counters"]["eager_forwards"]
    assert record["correctness"]["verdict"] == verdict
    assert json.loads((tmp_path / "result.json").read_text())["correctness"]["verdict"] == verdict
    probe_line = [line for line in summary_lines(record) if "correctness probe" in line][0]
    assert probe_line.split(": ", 1)[1].startswith("pass" if verdict == "pass" else "reference")
