"""The probe of an approximate configuration: the reference stores top-k log-probabilities, the
record carries the teacher-forced agreement figures and the tolerances, the verdict follows them."""

import json
from pathlib import Path

import pytest
import torch
from models import save_tiny_model

import allmos.bench.probe as probe
from allmos import LLM
from allmos.bench.agreement import APPROXIMATE_TOLERANCES
from allmos.bench.probe import MAX_TOKENS, NUM_PROMPTS, TOP, check_probe, ensure_reference
from allmos.config import ALL_OFF, EngineConfig
from allmos.kv_store.torch_store import TorchKVStore

SMALL = dict(dtype="float32", device="cpu", block_size=16, num_kv_blocks=64, max_model_len=256)
FIGURES = ("top1_agreement", "top1_agreement_after", "agreed_prefix", "top5_containment", "mean_abs_logprob_diff")


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setenv("ALLMOS_CACHE", str(tmp_path / "cache"))
    return save_tiny_model(tmp_path / "model", "qwen3")


@pytest.fixture
def reference(folder):
    return ensure_reference(EngineConfig.create(folder, **SMALL), "real")


def call_approximate(monkeypatch) -> None:
    """Stands in for an approximate switch: the probe judges an exact engine as if it were one."""
    monkeypatch.setattr(probe, "approximate_switches", lambda config: ["stand_in=approximate"])


def corrupt_kv_store(monkeypatch, damage) -> None:
    """Every K/V the torch store writes from now on passes through `damage` first."""
    write = TorchKVStore.write

    def damaged(store, k, v, k_cache, v_cache, slots, scales=None):
        return write(store, damage(k), damage(v), k_cache, v_cache, slots, scales)

    monkeypatch.setattr(TorchKVStore, "write", damaged)


def test_the_reference_stores_the_top_log_probabilities(reference):
    outputs = json.loads(Path(reference).read_text())["outputs"]
    assert len(outputs) == NUM_PROMPTS
    for out in outputs:
        assert len(out["tokens"]) == len(out["top"]) == len(out["logprobs"]) == MAX_TOKENS
        for token, top, logprobs in zip(out["tokens"], out["top"], out["logprobs"]):
            assert top[0] == token and len(top) == len(logprobs) == TOP
            assert logprobs == sorted(logprobs, reverse=True) and logprobs[0] <= 0.0


def test_the_reference_keeps_the_cache_in_the_model_dtype(folder):
    path = ensure_reference(EngineConfig.create(folder, **SMALL, kv_cache_dtype="fp8"), "real")
    assert json.loads(Path(path).read_text())["switches"]["kv_cache_dtype"] == "auto"


def test_an_exact_engine_judged_as_approximate_agrees_fully(folder, reference, monkeypatch):
    call_approximate(monkeypatch)
    record = check_probe(LLM(folder, **SMALL, **ALL_OFF), reference)
    assert (record["verdict"], record["passed"], record["reasons"]) == ("pass", True, [])
    assert record["approximate"] == ["stand_in=approximate"]
    assert record["first_divergence"] == [None] * NUM_PROMPTS
    assert (record["top1_agreement"], record["agreed_prefix"], record["top5_containment"]) == (1.0, 1.0, 1.0)
    assert record["top1_agreement_after"] is None and record["mean_abs_logprob_diff"] < 1e-4
    assert record["tolerances"] == APPROXIMATE_TOLERANCES.as_record()


def e4m3(x: torch.Tensor) -> torch.Tensor:
    """Quantize-dequantize with one scale per (token, head): a stand-in for an fp8 cache."""
    scale = x.abs().amax(dim=-1, keepdim=True).clamp(min=1e-6) / 448.0
    return (x / scale).to(torch.float8_e4m3fn).to(x.dtype) * scale


def test_a_perturbed_cache_is_teacher_forced_past_its_divergences(folder, reference, monkeypatch):
    call_approximate(monkeypatch)
    corrupt_kv_store(monkeypatch, e4m3)
    record = check_probe(LLM(folder, **SMALL, **ALL_OFF), reference)
    assert any(d is not None for d in record["first_divergence"])  # this tiny model does diverge
    assert record["top1_agreement_after"] is not None  # positions after a divergence were compared
    # re-anchored on the reference's tokens, agreement recovers past the first divergence
    assert record["top1_agreement"] > record["agreed_prefix"]
    assert all(0.0 <= record[f] <= 1.0 for f in FIGURES if f != "mean_abs_logprob_diff")
    assert 0.0 < record["mean_abs_logprob_diff"] < 1.0


def test_a_broken_cache_fails_naming_the_figures(folder, reference, monkeypatch):
    call_approximate(monkeypatch)
    corrupt_kv_store(monkeypatch, lambda x: x.sign())  # keeps only the signs
    record = check_probe(LLM(folder, **SMALL, **ALL_OFF), reference)
    assert (record["verdict"], record["passed"]) == ("fail", False)
    assert any(r.startswith("top-1 agreement") for r in record["reasons"])
    assert record["top1_agreement"] < APPROXIMATE_TOLERANCES.top1_agreement_min


def test_a_reference_without_log_probabilities_is_refused(folder, reference, monkeypatch, tmp_path):
    stored = json.loads(Path(reference).read_text())
    for out in stored["outputs"]:
        del out["logprobs"]
    old = tmp_path / "old-reference.json"
    old.write_text(json.dumps(stored))
    call_approximate(monkeypatch)
    with pytest.raises(ValueError, match="holds no log-probabilities .* delete it"):
        check_probe(LLM(folder, **SMALL, **ALL_OFF), str(old))


def test_exact_configurations_keep_the_exact_check(folder, reference):
    record = check_probe(LLM(folder, **SMALL, **(ALL_OFF | {"prefix_caching": True})), reference)
    assert (record["verdict"], record["approximate"]) == ("pass", [])
    assert not set(FIGURES) & set(record)


def test_the_fp8_cache_is_judged_as_approximate(folder, reference):
    record = check_probe(LLM(folder, **SMALL, **(ALL_OFF | {"kv_cache_dtype": "fp8"})), reference)
    assert record["approximate"] == ["kv_cache_dtype=fp8"]
    assert (record["verdict"], record["passed"], record["reasons"]) == ("pass", True, [])
    assert all(record[f] is not None for f in FIGURES if f != "top1_agreement_after")
