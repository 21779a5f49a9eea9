"""The probe of kv_cache_dtype=fp8 on a CUDA device (bf16, everything else on): judged as approximate
against the all-off reference, and within the stated tolerances. Needs the fp8 branch's switch."""

import pytest
from gpu_workload import GPU_MODEL
from models import save_tiny_model

from allmos import LLM
from allmos.bench.probe import check_probe, ensure_reference
from allmos.config import EngineConfig

pytestmark = pytest.mark.gpu

# Everything on is the engine's default on CUDA; a small cache share, as the other GPU tests.
ENGINE = dict(device="cuda", dtype="bfloat16", block_size=256, max_model_len=512, max_num_seqs=16,
              gpu_memory_utilization=0.3)  # fmt: skip


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    # a CPU run of this model with a simulated e4m3 cache measured 91-92% / 98-100% / 0.07-0.09
    return save_tiny_model(tmp_path_factory.mktemp("gpu_fp8_probe"), "qwen3", init_std=0.1, **GPU_MODEL)


@pytest.mark.parametrize("attention", ["triton", "sdpa"])
def test_the_fp8_cache_passes_the_approximate_probe(folder, tmp_path, monkeypatch, attention):
    monkeypatch.setenv("ALLMOS_CACHE", str(tmp_path / "cache"))
    reference = ensure_reference(EngineConfig.create(folder, **ENGINE), "real")
    record = check_probe(LLM(folder, **ENGINE, attention=attention, kv_cache_dtype="fp8"), reference)
    assert record["approximate"] == ["kv_cache_dtype=fp8"]
    assert (record["verdict"], record["reasons"]) == ("pass", []), record
    assert record["mean_abs_logprob_diff"] is not None and record["tolerances"]["top1_agreement_min"] > 0
