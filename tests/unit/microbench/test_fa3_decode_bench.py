"""fa3_decode_bench's calls: FA3's paged decode over disjoint page sets, in e4m3 with descales per (sequence, kv
head) for FP8 pages (the timing itself needs a GPU and FA3; here the calls are built on the CPU and recorded)."""

import subprocess
import sys

import pytest
import torch
from repo_paths import ROOT

from allmos.microbench.fa3_decode_bench import E4M3, fa3_calls


def recorded_calls(fp8: bool, batch: int = 3, context: int = 300, sets: int = 2):
    seen = []
    calls, num_bytes = fa3_calls(batch, context, fp8, lambda *a, **kw: seen.append((a, kw)), sets, device="cpu")
    for call in calls:
        call()
    return seen, num_bytes


def test_fp8_calls_take_e4m3_q_k_v_and_a_descale_per_sequence_and_kv_head():
    seen, num_bytes = recorded_calls(fp8=True)
    assert len(seen) == 2
    for (q, k, v), kwargs in seen:
        assert q.dtype == k.dtype == v.dtype == E4M3 and q.shape == (3, 1, 16, 128)
        assert k.shape == (2 * 3 * 2, 256, 8, 128)  # 2 sets x 3 sequences x 2 pages of 256 for 300 tokens
        for name in ("q_descale", "k_descale", "v_descale"):
            assert kwargs[name].shape == (3, 8) and kwargs[name].dtype == torch.float32
        assert kwargs["cache_seqlens"].tolist() == [300] * 3 and kwargs["causal"]
    assert num_bytes == 2 * 3 * 300 * 8 * 128 + 3 * 16 * 128 * (1 + 2)  # K/V once, q in e4m3, out in bf16


def test_bf16_calls_have_no_descales_and_each_set_reads_its_own_pages():
    seen, num_bytes = recorded_calls(fp8=False)
    tables = [kwargs["page_table"] for _, kwargs in seen]
    assert all("q_descale" not in kwargs and args[0].dtype == torch.bfloat16 for args, kwargs in seen)
    pages = torch.cat([t.flatten() for t in tables])
    assert sorted(pages.tolist()) == list(range(12)) and all(t.shape == (3, 2) for t in tables)
    assert num_bytes == 2 * 3 * 300 * 8 * 128 * 2 + 3 * 16 * 128 * 4


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_fa3_decode_bench_refuses_to_start_without_a_gpu():
    args = [sys.executable, "-m", "allmos.microbench.fa3_decode_bench", "--batches", "16"]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "fa3_decode_bench needs a CUDA GPU" in proc.stderr
