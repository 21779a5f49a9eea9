"""CPU tests of the qkv projection with the rope epilogue (allmos/linear/kernels/gemv_rope.py, rope.fuse_qkv)
through the Triton interpreter (TRITON_INTERPRET=1): it must leave the output row and the paged caches
exactly as the kernels it replaces do (add_rms_norm_linear, the bias, then the rope kernel storing K/V), and
match the torch path.

Like triton_interpreter_kernels.py, this module must run in a pytest process of its own (TRITON_INTERPRET
is read when triton is first imported): test_triton_kernels_cpu.py runs it so. It skips itself on machines
with CUDA unless TRITON_INTERPRET=1 is already set. GPU tests: test_qkv_rope_gpu.py.
"""

import importlib

import pytest
import torch
from triton_guards import interpreter_bf16_rounding, use_triton_interpreter  # noqa: F401 (fixtures)

use_triton_interpreter("test_qkv_rope_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_bf16_rounding")]

import qkv_rope_cases as cases  # noqa: E402 (imports triton: after the interpreter is set)


@pytest.mark.parametrize("case", cases.CASES, ids=cases.CASE_IDS)
def test_leaves_what_the_separate_kernels_leave(case):
    fused, separate = cases.run_both(case, "cpu")
    cases.assert_same(fused, separate, case)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_matches_the_torch_path(dtype):
    case = cases.Case(dtype=dtype)
    fused = cases.run_fused(case, "cpu")
    expected = cases.run_torch(case, "cpu")
    cases.assert_close_to_torch(fused, expected)


def test_counters_are_left_zeroed_for_the_next_launch():
    case = cases.Case()
    counters = cases.new_counters(case, "cpu")
    first = cases.run_fused(case, "cpu", counters)
    assert (counters == 0).all()
    again = cases.run_fused(case, "cpu", counters)
    cases.assert_same(again, first)


def test_the_check_catches_a_missing_rotation():
    """The comparison would see a kernel that stored the projection without the epilogue."""
    case = cases.Case()
    fused, separate = cases.run_both(case, "cpu")
    plain = cases.run_projection_only(case, "cpu")
    assert not torch.equal(plain.qkv, separate.qkv)
    with pytest.raises(AssertionError):
        cases.assert_same(plain, separate)


@pytest.mark.parametrize("case", [cases.Case(), cases.Case(store="fp8", dtype=torch.bfloat16)], ids=["auto", "fp8"])
def test_the_gpu_check_tolerates_last_bits_of_q_and_k_only(case):
    """assert_agrees (the compiled kernels' check) passes the fused output, and a q/k element one unit in the
    last place off, but not a missing rotation, nor a V element one unit off."""
    fused, separate = cases.run_both(case, "cpu")
    cases.assert_agrees(fused, separate, case)
    nudged = fused.qkv.clone()
    nudged[0, 5] = torch.nextafter(nudged[0, 5], torch.tensor(float("inf"), dtype=nudged.dtype))
    cases.assert_agrees(fused._replace(qkv=nudged), separate, case)
    with pytest.raises(AssertionError):
        cases.assert_agrees(cases.run_projection_only(case, "cpu"), separate, case)
    v_nudged = fused.qkv.clone()
    v_nudged[0, -1] = torch.nextafter(v_nudged[0, -1], torch.tensor(float("inf"), dtype=v_nudged.dtype))
    with pytest.raises(AssertionError, match="V heads"):
        cases.assert_agrees(fused._replace(qkv=v_nudged), separate, case)


def test_refuses_what_it_cannot_run():
    gemv_rope = importlib.import_module("allmos.linear.kernels.gemv_rope")
    case = cases.Case()
    inputs = cases.make_inputs(case, "cpu")
    rope = inputs.rope
    with pytest.raises(ValueError, match="outputs are not"):
        gemv_rope.add_rms_norm_qkv_rope(*inputs.projection, rope._replace(num_kv_heads=1), inputs.counters)
    with pytest.raises(ValueError, match="does not divide head_dim"):
        gemv_rope.add_rms_norm_qkv_rope(*inputs.projection, rope, inputs.counters, block_n=64)
    with pytest.raises(ValueError, match="counters"):
        gemv_rope.add_rms_norm_qkv_rope(*inputs.projection, rope, inputs.counters[:2])
    x, residual, *rest = inputs.projection
    with pytest.raises(ValueError, match=r"\[1\.\.1,"):
        gemv_rope.add_rms_norm_qkv_rope(x.repeat(2, 1), residual.repeat(2, 1), *rest, rope, inputs.counters)
