"""The quality check on real weights (SmolLM2-135M-Instruct, CPU): the text teacher-forced in chunks
through the paged cache, kv_cache_dtype=fp8 against auto."""

import json

import pytest
import torch

from allmos.bench import quality

pytestmark = pytest.mark.slow  # two engines on real weights, and transformers

# First measured with an e4m3 cache simulated by quantize-dequantize at the store (fp32 model, chunks
# of 32, 733 scored predictions): perplexity 23.04 (auto) vs 22.98-23.31, ratio 0.997-1.012, top-1
# agreement 95.5-96.6%, mean KL 0.0034-0.0051 nats, for per-token, per-head and no scaling alike; an
# e5m2 cache (2 mantissa bits) measured 1.037 / 91.5% / 0.021, outside these bounds.
PERPLEXITY_WITHIN = 0.02  # |ratio - 1|
TOP1_AGREEMENT_MIN = 0.93
MEAN_KL_MAX = 0.01  # nats


def test_chunked_prefill_through_the_cache_matches_transformers(smollm2_folder):
    from transformers import AutoModelForCausalLM

    ids = quality.text_token_ids(smollm2_folder)
    engine = quality.engine_for(smollm2_folder, len(ids), "auto", "float32", "cpu")
    ours = quality.chunked_logprobs(engine, ids, quality.CHUNK)
    model = AutoModelForCausalLM.from_pretrained(smollm2_folder, dtype=torch.float32).eval()
    with torch.no_grad():
        theirs = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    assert ours.shape == theirs.shape and len(ids) > 10 * quality.CHUNK
    assert (ours - theirs).abs().max().item() < 1e-3  # 5.5e-5 measured


def test_compare_of_identical_and_shifted_distributions():
    logprobs = torch.log_softmax(torch.randn(6, 11, generator=torch.Generator().manual_seed(0)), dim=-1)
    tokens = [3, 1, 4, 1, 5, 9]
    same = quality.compare(logprobs, logprobs, tokens, skip=1)
    assert (same["scored_tokens"], same["perplexity_ratio"], same["top1_agreement"], same["mean_kl"]) == (4, 1, 1, 0)
    nll = -sum(logprobs[i, tokens[i + 1]].item() for i in range(1, 5)) / 4
    assert same["perplexity_reference"] == pytest.approx(torch.tensor(nll).exp().item())
    uniform = torch.full_like(logprobs, -torch.log(torch.tensor(11.0)).item())
    shifted = quality.compare(logprobs, uniform, tokens, skip=1)
    assert shifted["perplexity_approximate"] == pytest.approx(11.0)
    assert shifted["mean_kl"] > 0


def test_the_fp8_cache_costs_little_quality(smollm2_folder, capsys):
    """Needs the kv_cache_dtype switch of the fp8 branch (before that merge, fp8 changes nothing: KL 0)."""
    assert quality.main(["--model", smollm2_folder, "--kv-cache-dtype", "fp8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[1].startswith("| kv_cache_dtype | perplexity |") and lines[4].startswith("| fp8 |")
    figures = json.loads(lines[-1])
    assert figures["kv_cache_dtype"] == "fp8" and figures["scored_tokens"] > 700
    assert abs(figures["perplexity_ratio"] - 1) <= PERPLEXITY_WITHIN
    assert figures["top1_agreement"] >= TOP1_AGREEMENT_MIN
    assert 0 < figures["mean_kl"] <= MEAN_KL_MAX  # above 0: the cache really was read in fp8
