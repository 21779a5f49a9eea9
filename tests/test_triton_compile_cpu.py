"""Compile Triton kernels for an H100 (sm_90) without a GPU: what the interpreter lets through but the
compiler refuses (e.g. a kernel reading a non-constexpr module global) fails here, before a device call.
Uses the ptxas bundled with the triton wheel."""

import pytest

triton = pytest.importorskip("triton")
from triton.backends.compiler import GPUTarget  # noqa: E402
from triton.compiler import ASTSource  # noqa: E402

H100 = GPUTarget("cuda", 90, 32)


def compile_for_h100(fn, types: dict[str, str], constexprs: dict[str, object]):
    signature = {name: types.get(name, "constexpr") for name in fn.arg_names}
    indexed = {(fn.arg_names.index(name),): value for name, value in constexprs.items()}
    return triton.compile(ASTSource(fn=fn, signature=signature, constexprs=indexed), target=H100)


def test_sampler_kernels_compile_for_h100():
    from allmos.sampling import triton_kernels as k

    chunk_types = {"logits_ptr": "*bf16", "temperatures_ptr": "*fp32", "best_score_ptr": "*fp32"}
    chunk_types |= {"best_token_ptr": "*i32", **dict.fromkeys(("seed", "vocab", "stride_row", "chunk_len"), "i32")}
    chunk_types["num_chunks"] = "i32"
    assert "cubin" in compile_for_h100(k._chunk_best_kernel, chunk_types, {"BLOCK": 1024}).asm
    row_types = {"best_score_ptr": "*fp32", "best_token_ptr": "*i32", "tokens_ptr": "*i64", "num_chunks": "i32"}
    assert "cubin" in compile_for_h100(k._row_best_kernel, row_types, {"CHUNKS_PAD": 256}).asm
