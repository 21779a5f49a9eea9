"""CPU tests of the single-row linear kernels with fused prologues (allmos/linear/kernels/gemv.py)
through the Triton interpreter (TRITON_INTERPRET=1), against the torch path: the ops in
allmos/layers/ops.py followed by F.linear.

Like triton_interpreter_kernels.py, this module must run in a pytest process of its own (TRITON_INTERPRET
is read when triton is first imported): test_triton_kernels_cpu.py runs it so. It skips itself on machines
with CUDA unless TRITON_INTERPRET=1 is already set. GPU tests: test_skinny_linear_gpu.py.
"""

import importlib

import pytest
import torch
import torch.nn.functional as F
from triton_guards import interpreter_bf16_rounding, use_triton_interpreter  # noqa: F401 (fixtures)

use_triton_interpreter("test_skinny_linear_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_bf16_rounding")]

_skinny = importlib.import_module("allmos.linear.kernels.gemv")
_config = importlib.import_module("allmos.linear.kernels.gemv_config")
_ops = importlib.import_module("allmos.layers.ops")
MAX_ROWS = importlib.import_module("allmos.linear.kernels.gemv_checks").MAX_ROWS

EPS = 1e-6
# Outputs are O(1). float32: the summation order differs from torch's; 16-bit: a product that lands
# near a rounding boundary of the output or of an activation may round the other way.
TOLERANCES = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.bfloat16: {"atol": 2e-2, "rtol": 1e-2},
    torch.float16: {"atol": 4e-3, "rtol": 2e-3},
}
DTYPES = [torch.float32, torch.bfloat16, torch.float16]
# (rows, K, N, block config): N not a multiple of block_n, K not a multiple of block_k, several rows,
# one block of K, and the default config.
CASES = [
    (1, 96, 37, {"block_n": 8, "block_k": 64}),
    (1, 256, 64, {"block_n": 4, "block_k": 64, "num_warps": 2}),
    (1, 1000, 24, {}),
    (3, 160, 20, {"block_n": 4, "block_k": 64}),
    (MAX_ROWS, 64, 9, {"block_n": 2, "block_k": 64}),
    (2, 48, 5, {"block_n": 8, "block_k": 512}),
]
CASE_IDS = [f"m{m}-k{k}-n{n}-{'-'.join(f'{v}' for v in c.values()) or 'default'}" for m, k, n, c in CASES]


# ---------------------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------------------


def randn(*shape, gen, dtype, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen)).to(dtype)


def make_weight(n, k, gen, dtype):
    return randn(n, k, gen=gen, dtype=dtype, scale=k**-0.5)  # outputs O(1) for O(1) activations


def assert_matches(actual, expected):
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    torch.testing.assert_close(actual, expected, **TOLERANCES[actual.dtype])
    if actual.dtype != torch.float32:
        # Both round the same float32 values to nearest even: nearly every element is bit-identical. A
        # kernel that skipped the reference's intermediate roundings would miss about a quarter.
        exact = (actual == expected).float().mean()
        assert exact > 0.9, f"only {exact:.1%} of elements match the reference bit for bit"


def is_close(actual, expected):
    return torch.allclose(actual.float(), expected.float(), **TOLERANCES[actual.dtype])


def assert_unchanged(tensors, copies):
    for tensor, copy in zip(tensors, copies):
        assert torch.equal(tensor, copy), "an input was modified"


def norm_case(rows, k, n, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x, residual = randn(rows, k, gen=gen, dtype=dtype), randn(rows, k, gen=gen, dtype=dtype)
    norm_weight = (1 + 0.5 * torch.randn(k, generator=gen)).to(dtype)
    return x, residual, norm_weight, make_weight(n, k, gen, dtype)


def norm_reference(x, residual, norm_weight, weight):
    if residual is None:
        return F.linear(_ops.rms_norm(x, norm_weight, EPS), weight), x
    normed, new_residual = _ops.add_rms_norm(x, residual, norm_weight, EPS)
    return F.linear(normed, weight), new_residual


# ---------------------------------------------------------------------------------------------------------
# skinny_linear
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,k,n,config", CASES, ids=CASE_IDS)
def test_skinny_linear_matches_f_linear(rows, k, n, config, dtype):
    gen = torch.Generator().manual_seed(1)
    x, weight = randn(rows, k, gen=gen, dtype=dtype), make_weight(n, k, gen, dtype)
    copies = (x.clone(), weight.clone())
    assert_matches(_skinny.skinny_linear(x, weight, **config), F.linear(x, weight))
    assert_unchanged((x, weight), copies)


def test_skinny_linear_reads_strided_rows():
    gen = torch.Generator().manual_seed(2)
    packed = torch.randn(3, 200, generator=gen)
    x, weight = packed[:, 40:136], make_weight(11, 96, gen, torch.float32)
    assert_matches(_skinny.skinny_linear(x, weight, block_n=4, block_k=64), F.linear(x, weight))


# ---------------------------------------------------------------------------------------------------------
# add_rms_norm_linear
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("with_residual", [True, False], ids=["add_rms_norm", "rms_norm"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,k,n,config", CASES, ids=CASE_IDS)
def test_add_rms_norm_linear_matches_torch_path(rows, k, n, config, dtype, with_residual):
    x, residual, norm_weight, weight = norm_case(rows, k, n, dtype)
    residual = residual if with_residual else None
    expected_y, expected_residual = norm_reference(x, residual, norm_weight, weight)
    inputs = [t for t in (x, residual, norm_weight, weight) if t is not None]
    copies = [t.clone() for t in inputs]

    y, new_residual = _skinny.add_rms_norm_linear(x, residual, norm_weight, EPS, weight, **config)
    assert_matches(y, expected_y)
    assert torch.equal(new_residual, expected_residual)  # one rounding of the same sum
    assert_unchanged(inputs, copies)
    if with_residual:
        assert new_residual.data_ptr() not in (x.data_ptr(), residual.data_ptr())
    else:
        assert new_residual is x


def test_add_rms_norm_linear_tolerance_catches_a_dropped_residual():
    x, residual, norm_weight, weight = norm_case(1, 96, 37, torch.bfloat16, seed=3)
    expected_y, _ = norm_reference(x, residual, norm_weight, weight)
    y, _ = _skinny.add_rms_norm_linear(x, None, norm_weight, EPS, weight, block_n=8, block_k=64)
    assert not is_close(y, expected_y)


def test_add_rms_norm_linear_tolerance_catches_a_missing_norm_weight():
    x, residual, norm_weight, weight = norm_case(1, 96, 37, torch.bfloat16, seed=4)
    expected_y, _ = norm_reference(x, residual, norm_weight, weight)
    y, _ = _skinny.add_rms_norm_linear(x, residual, torch.ones_like(norm_weight), EPS, weight, block_n=8, block_k=64)
    assert not is_close(y, expected_y)


def test_add_rms_norm_linear_reads_strided_rows():
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(2, 300, generator=gen)[:, 100:196]
    residual = torch.randn(2, 150, generator=gen)[:, 10:106]
    norm_weight, weight = torch.rand(96, generator=gen) + 0.5, make_weight(13, 96, gen, torch.float32)
    expected_y, expected_residual = norm_reference(x, residual, norm_weight, weight)
    y, new_residual = _skinny.add_rms_norm_linear(x, residual, norm_weight, EPS, weight, block_n=4, block_k=64)
    assert_matches(y, expected_y)
    assert torch.equal(new_residual, expected_residual) and new_residual.is_contiguous()


# ---------------------------------------------------------------------------------------------------------
# silu_mul_linear
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rows,k,n,config", CASES, ids=CASE_IDS)
def test_silu_mul_linear_matches_torch_path(rows, k, n, config, dtype):
    gen = torch.Generator().manual_seed(6)
    gate_up, weight = randn(rows, 2 * k, gen=gen, dtype=dtype, scale=2.0), make_weight(n, k, gen, dtype)
    copies = (gate_up.clone(), weight.clone())
    y = _skinny.silu_mul_linear(gate_up, weight, **config)
    assert_matches(y, F.linear(_ops.silu_and_mul(gate_up), weight))
    assert_unchanged((gate_up, weight), copies)


def test_silu_mul_linear_tolerance_catches_swapped_halves():
    gen = torch.Generator().manual_seed(7)
    gate_up, weight = randn(1, 192, gen=gen, dtype=torch.bfloat16, scale=2.0), make_weight(37, 96, gen, torch.bfloat16)
    up_gate = torch.cat(gate_up.chunk(2, dim=-1), dim=-1).roll(96, dims=-1)
    y = _skinny.silu_mul_linear(up_gate, weight, block_n=8, block_k=64)
    assert not is_close(y, F.linear(_ops.silu_and_mul(gate_up), weight))


@pytest.mark.filterwarnings("ignore:overflow encountered in exp")
def test_silu_mul_linear_extreme_gates():
    """silu of large negative gates is -0 (exp overflows to inf), of large positive gates the gate."""
    gate = torch.tensor([[-200.0, -90.0, -20.0, 0.0, 20.0, 90.0, 200.0, 1.5]])
    gate_up = torch.cat([gate, torch.full_like(gate, 3.0)], dim=-1)
    weight = torch.eye(8)
    y = _skinny.silu_mul_linear(gate_up, weight, block_n=4, block_k=8)
    assert not torch.isnan(y).any()
    assert_matches(y, F.linear(_ops.silu_and_mul(gate_up), weight))


# ---------------------------------------------------------------------------------------------------------
# Input checks
# ---------------------------------------------------------------------------------------------------------


def test_rejects_bad_rows_and_weights():
    x, weight = torch.randn(1, 64), torch.randn(16, 64)
    with pytest.raises(ValueError, match="not \\[1..8, 64\\]"):
        _skinny.skinny_linear(torch.randn(MAX_ROWS + 1, 64), weight)
    with pytest.raises(ValueError, match="not \\[1..8, 64\\]"):
        _skinny.skinny_linear(torch.randn(1, 32), weight)
    with pytest.raises(ValueError, match="contiguous"):
        _skinny.skinny_linear(torch.randn(64, 2).t(), weight)
    with pytest.raises(ValueError, match="row-major"):
        _skinny.skinny_linear(x, torch.randn(64, 16).t())
    with pytest.raises(ValueError, match="dtype|float16"):
        _skinny.skinny_linear(x, weight.half())
    with pytest.raises(ValueError, match="not \\[1..8, 128\\]"):
        _skinny.silu_mul_linear(x, weight)


def test_rejects_bad_norm_arguments():
    x, norm_weight, weight = torch.randn(2, 64), torch.ones(64), torch.randn(16, 64)
    with pytest.raises(ValueError, match="residual"):
        _skinny.add_rms_norm_linear(x, torch.randn(1, 64), norm_weight, EPS, weight)
    with pytest.raises(ValueError, match="residual"):
        _skinny.add_rms_norm_linear(x, x.half(), norm_weight, EPS, weight)
    with pytest.raises(ValueError, match="norm_weight"):
        _skinny.add_rms_norm_linear(x, None, torch.ones(32), EPS, weight)
    with pytest.raises(ValueError, match="norm_weight"):
        _skinny.add_rms_norm_linear(x, None, norm_weight.double(), EPS, weight)


def test_rejects_bad_block_configs():
    x, weight = torch.randn(1, 64), torch.randn(16, 64)
    with pytest.raises(ValueError, match="power of two"):
        _skinny.skinny_linear(x, weight, block_n=6)
    with pytest.raises(ValueError, match="power of two"):
        _skinny.skinny_linear(x, weight, num_warps=0)
    with pytest.raises(ValueError, match="register budget"):
        _skinny.skinny_linear(torch.randn(8, 1024), torch.randn(16, 1024), block_n=16, block_k=512)


def test_default_config_keeps_the_register_budget():
    for rows in range(1, MAX_ROWS + 1):
        for n, k in ((4096, 1024), (1024, 2048), (6144, 1024), (1024, 3072), (151936, 1024)):
            assert _config.accumulator_fits(rows, **_config.default_config(rows, n, k))
    assert _config.default_config(1, 4096, 1024) == {"block_n": 8, "block_k": 1024, "num_warps": 4}  # qkv
    assert _config.default_config(1, 1024, 2048) == {"block_n": 2, "block_k": 2048, "num_warps": 4}  # o
    down = _config.default_config(1, 1024, 3072)  # whole rows in one (masked) chunk
    assert down == {"block_n": 4, "block_k": 4096, "num_warps": 16}
