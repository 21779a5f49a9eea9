"""The Triton kernels' CPU tests (the *_interpreter_kernels.py modules) each in their own pytest
process: TRITON_INTERPRET must be set before triton is first imported, which an earlier test may
have done."""

import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")
HERE = os.path.dirname(os.path.abspath(__file__))


INTERPRETER_MODULES = [
    "triton_interpreter_kernels.py",
    "prefill_interpreter_kernels.py",
    "qk_rope_interpreter_kernels.py",
    "sampler_interpreter_kernels.py",
    "skinny_linear_interpreter_kernels.py",
    "rows_linear_interpreter_kernels.py",
]


@pytest.mark.parametrize("module", INTERPRETER_MODULES)
def test_triton_kernels_under_the_interpreter(module):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=os.path.dirname(HERE))
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(HERE, module)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=os.path.dirname(HERE),
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]
