"""The Triton kernels' CPU tests (every *_interpreter_kernels.py module of this folder) each in their own
pytest process: TRITON_INTERPRET must be set before triton is first imported, which an earlier test may
have done."""

import glob
import os
import subprocess
import sys

import pytest
from repo_paths import ROOT

pytest.importorskip("triton")
pytestmark = pytest.mark.interpreter
HERE = os.path.dirname(os.path.abspath(__file__))
INTERPRETER_MODULES = sorted(os.path.basename(p) for p in glob.glob(os.path.join(HERE, "*_interpreter_kernels.py")))
if not INTERPRETER_MODULES:
    raise RuntimeError(f"no *_interpreter_kernels.py module in {HERE}")


@pytest.mark.parametrize("module", INTERPRETER_MODULES)
def test_triton_kernels_under_the_interpreter(module):
    env = dict(os.environ, TRITON_INTERPRET="1", PYTHONPATH=ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", os.path.join(HERE, module)],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and "skipped" not in proc.stdout.splitlines()[-1]
