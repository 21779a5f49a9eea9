"""GPU tests of the qkv projection with the rope epilogue (allmos/linear/kernels/gemv_rope.py, rope.fuse_qkv):
compiled, with and without programmatic dependent launch, it leaves the output row and the paged caches as
the kernels it replaces do (qkv_rope_cases.assert_agrees: V and the residual bit for bit, the rotated q/k to
their last bits), at the test cases' shapes and at Qwen3-0.6B's (bf16, 16 + 2 x 8 heads of 128 from 1024),
where 16 programs share each head's counter.

Skipped without CUDA, and when TRITON_INTERPRET=1 is set (qkv_rope_interpreter_kernels.py covers the
interpreter)."""

import dataclasses

import pytest
import torch
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

import qkv_rope_cases as cases  # noqa: E402 (imports triton)

QWEN3 = dict(heads=16, kv_heads=8, head_dim=128, hidden=1024, dtype=torch.bfloat16, slot=7, position=3000)
QWEN3_CASES = [cases.Case(**QWEN3), cases.Case(**QWEN3, store="fp8"), cases.Case(**QWEN3, store="none")]
GPU_CASES = cases.CASES + QWEN3_CASES


def pdl_case(case: cases.Case, pdl: bool) -> cases.Case:
    return dataclasses.replace(case, extra=case.extra | {"pdl": pdl})


@pytest.mark.parametrize("pdl", [False, True], ids=["plain", "pdl"])
@pytest.mark.parametrize("case", GPU_CASES, ids=[c.id for c in GPU_CASES])
def test_agrees_with_the_separate_kernels(case, pdl):
    fused = cases.run_fused(pdl_case(case, pdl), "cuda")
    cases.assert_agrees(fused, cases.run_separate(case, "cuda"), case)


def test_matches_the_torch_path_at_qwen3_shapes():
    case = QWEN3_CASES[0]
    cases.assert_close_to_torch(cases.run_fused(case, "cuda"), cases.run_torch(case, "cuda"))


def test_repeated_launches_keep_agreeing():
    """The counters reset themselves: a hundred launches back to back on one buffer, under PDL, each
    leaving the same bits (one compiled kernel, the same inputs)."""
    case = pdl_case(QWEN3_CASES[0], True)
    counters = cases.new_counters(case, "cuda")
    first = cases.run_fused(case, "cuda", counters)
    for _ in range(100):
        again = cases.run_fused(case, "cuda", counters)
    torch.cuda.synchronize()
    assert (counters == 0).all()
    cases.assert_same(again, first)
