"""Module-level setup of the Triton kernel tests: the interpreter on CPU, or compiled kernels on CUDA.

TRITON_INTERPRET is read when triton is first imported, so an interpreter module runs in a pytest
process of its own (test_triton_kernels_cpu.py starts one per module). On a machine with CUDA it skips
unless TRITON_INTERPRET=1 is already set: there the compiled kernels have their own gpu tests.
"""

import os
import sys

import pytest
import torch


def use_triton_interpreter(gpu_tests: str) -> None:
    """Call at the top of the module, before anything imports triton."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        if torch.cuda.is_available():
            pytest.skip(
                f"CUDA is present: {gpu_tests} tests the compiled kernels "
                "(set TRITON_INTERPRET=1 to run these interpreter tests)",
                allow_module_level=True,
            )
        if "triton" in sys.modules:
            pytest.skip(
                "triton was imported before TRITON_INTERPRET=1 could be set; run this file in its own pytest process",
                allow_module_level=True,
            )
    os.environ["TRITON_INTERPRET"] = "1"
    pytest.importorskip("triton")


def require_compiled_triton() -> None:
    """Skip a module of compiled-kernel (gpu) tests where they cannot run."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        pytest.skip("compiled-kernel tests cannot run under TRITON_INTERPRET=1", allow_module_level=True)
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device", allow_module_level=True)
    pytest.importorskip("triton")


@pytest.fixture(scope="module")
def interpreter_loop_bounds():
    """Triton <= 3.6's interpreter turns a tensor loop bound into an int with int(<array of shape (1,)>),
    which numpy >= 2.4 rejects (triton-lang/triton#9171). Applies the upstream fix for one module:
    `pytestmark = pytest.mark.usefixtures("interpreter_loop_bounds")` after importing this fixture."""
    from triton.runtime import interpreter

    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None:
        yield
        return

    from interpreter_loop_bounds import with_index

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(interpreter, "_patch_lang_tensor", with_index(original))
        yield


@pytest.fixture(scope="module")
def interpreter_bf16_rounding():
    """Triton <= 3.6's interpreter casts float32 -> bfloat16 by truncation (round toward zero), where the
    compiled kernel rounds to nearest even (cvt.rn). Rounds to nearest even here too, for one module
    (`pytest.mark.usefixtures("interpreter_bf16_rounding")`), so that bf16 results can be held to the
    reference's rounding."""
    import numpy as np
    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    original = builder.cast_impl

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            rounded = torch.from_numpy(np.ascontiguousarray(src.data, dtype=np.float32)).to(torch.bfloat16)
            return interpreter.TensorHandle(rounded.view(torch.int16).numpy().view(np.uint16), tl.bfloat16)
        return original(self, src, dst_type)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(builder, "cast_impl", cast_impl)
        yield
