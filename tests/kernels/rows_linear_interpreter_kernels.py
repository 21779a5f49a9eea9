"""CPU tests of the multi-row tensor-core GEMMs with fused prologues and split-K
(allmos/linear/kernels/gemm.py) through the Triton interpreter, against the torch path: the ops in
allmos/layers/ops.py followed by F.linear.

Like the other *_interpreter_kernels.py modules this runs in a pytest process of its own
(test_triton_kernels_cpu.py starts it). The interpreter computes bfloat16 dots wrongly, so the inputs are
float32 (the kernel's float32 dot is exact, not TF32) and float16. The interpreter runs one program after
another, so the split-K arrival order is always the same here; the GPU tests run it concurrently
(test_rows_linear_gpu.py).
"""

import importlib

import pytest
import torch
import torch.nn.functional as F
from triton_guards import interpreter_loop_bounds, use_triton_interpreter  # noqa: F401 (a fixture)

use_triton_interpreter("test_rows_linear_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_loop_bounds")]

_rows = importlib.import_module("allmos.linear.kernels.gemm")
_ops = importlib.import_module("allmos.layers.ops")

EPS = 1e-6
TOLERANCES = {torch.float32: {"atol": 1e-5, "rtol": 1e-5}, torch.float16: {"atol": 4e-3, "rtol": 2e-3}}
DTYPES = [torch.float32, torch.float16]
SMALL = {"block_m": 16, "block_n": 16, "block_k": 16, "num_stages": 1}
# (rows, K, N, config): rows, N and K not multiples of their blocks; split-K with slices of uneven
# length and slices wholly past K (K=200 in 8 slices of 32); several row tiles; the default config.
CASES = [
    (5, 96, 48, SMALL | {"split_k": 1}),
    (5, 96, 48, SMALL | {"split_k": 2}),
    (33, 200, 40, SMALL | {"split_k": 3}),
    (17, 200, 24, SMALL | {"split_k": 8}),
    (2, 64, 16, SMALL | {"split_k": 4}),
    (3, 128, 70, {}),
]
CASE_IDS = [f"m{m}-k{k}-n{n}-split{c.get('split_k', 'default')}" for m, k, n, c in CASES]


def randn(*shape, gen, dtype, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen)).to(dtype)


def make_weight(n, k, gen, dtype):
    return randn(n, k, gen=gen, dtype=dtype, scale=k**-0.5)


def assert_matches(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, **TOLERANCES[actual.dtype])


@pytest.fixture
def counters():
    c = _rows.new_split_counters("cpu")
    yield c
    assert not c.any(), "a split-K launch left a counter set"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,k,n,config", CASES, ids=CASE_IDS)
def test_rows_linear_matches_f_linear(rows, k, n, config, dtype, counters):
    gen = torch.Generator().manual_seed(1)
    x, weight = randn(rows, k, gen=gen, dtype=dtype), make_weight(n, k, gen, dtype)
    copies = (x.clone(), weight.clone())
    y = _rows.rows_linear(x, weight, counters=counters, config=config)
    assert_matches(y, F.linear(x, weight))
    assert torch.equal(x, copies[0]) and torch.equal(weight, copies[1])


@pytest.mark.parametrize("with_residual", [True, False], ids=["add_rms_norm", "rms_norm"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,k,n,config", CASES, ids=CASE_IDS)
def test_add_rms_norm_rows_linear_matches_torch_path(rows, k, n, config, dtype, with_residual, counters):
    gen = torch.Generator().manual_seed(2)
    x, residual = randn(rows, k, gen=gen, dtype=dtype), randn(rows, k, gen=gen, dtype=dtype)
    norm_weight, weight = (1 + 0.5 * torch.randn(k, generator=gen)).to(dtype), make_weight(n, k, gen, dtype)
    if with_residual:
        normed, expected_residual = _ops.add_rms_norm(x, residual, norm_weight, EPS)
    else:
        residual, normed, expected_residual = None, _ops.rms_norm(x, norm_weight, EPS), x
    y, new_residual = _rows.add_rms_norm_rows_linear(
        x, residual, norm_weight, EPS, weight, counters=counters, config=config
    )
    assert_matches(y, F.linear(normed, weight))
    assert torch.equal(new_residual, expected_residual)
    assert (new_residual is x) != with_residual


def test_add_rms_norm_rows_linear_tolerance_catches_a_missing_norm_weight(counters):
    gen = torch.Generator().manual_seed(3)
    x, residual, weight = (
        randn(5, 96, gen=gen, dtype=torch.float32),
        randn(5, 96, gen=gen, dtype=torch.float32),
        make_weight(20, 96, gen, torch.float32),
    )
    norm_weight = 1 + 0.5 * torch.randn(96, generator=gen)
    normed, _ = _ops.add_rms_norm(x, residual, norm_weight, EPS)
    y, _ = _rows.add_rms_norm_rows_linear(
        x, residual, torch.ones_like(norm_weight), EPS, weight, counters=counters, config=SMALL
    )
    assert not torch.allclose(y, F.linear(normed, weight), **TOLERANCES[torch.float32])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,k,n,config", CASES, ids=CASE_IDS)
def test_silu_mul_rows_linear_matches_torch_path(rows, k, n, config, dtype, counters):
    gen = torch.Generator().manual_seed(4)
    gate_up, weight = randn(rows, 2 * k, gen=gen, dtype=dtype, scale=2.0), make_weight(n, k, gen, dtype)
    y = _rows.silu_mul_rows_linear(gate_up, weight, counters=counters, config=config)
    assert_matches(y, F.linear(_ops.silu_and_mul(gate_up), weight))


def test_silu_mul_rows_linear_tolerance_catches_swapped_halves(counters):
    gen = torch.Generator().manual_seed(5)
    gate_up, weight = randn(4, 192, gen=gen, dtype=torch.float32, scale=2.0), make_weight(24, 96, gen, torch.float32)
    up_gate = gate_up.roll(96, dims=-1)
    y = _rows.silu_mul_rows_linear(up_gate, weight, counters=counters, config=SMALL | {"split_k": 2})
    assert not torch.allclose(y, F.linear(_ops.silu_and_mul(gate_up), weight), atol=1e-3)


def test_split_k_sums_every_slice(counters):
    """A reduction that kept only the last slice's partial would be off by the other slices."""
    x, weight = torch.ones(16, 64), torch.ones(16, 64)
    y = _rows.rows_linear(x, weight, counters=counters, config=SMALL | {"split_k": 4})
    assert torch.equal(y, torch.full((16, 16), 64.0))


def test_reads_strided_rows(counters):
    gen = torch.Generator().manual_seed(6)
    x, weight = torch.randn(3, 200, generator=gen)[:, 40:136], make_weight(11, 96, gen, torch.float32)
    y = _rows.rows_linear(x, weight, counters=counters, config=SMALL | {"split_k": 2})
    assert_matches(y, F.linear(x, weight))
