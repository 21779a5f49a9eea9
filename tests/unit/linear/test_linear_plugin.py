"""Which path each linear plugin takes: linear=triton sends single-token steps to its GEMV kernels, steps
of 2..MAX_GEMM_ROWS tokens to its multi-row GEMMs when `linear.gemm` is on (both recorded here by
stand-ins), and everything else to the unfused modules; linear=torch never leaves them. The kernels
themselves are tested in skinny_linear_interpreter_kernels.py, rows_linear_interpreter_kernels.py and on
the GPU."""

import types

import pytest
import torch

from allmos.layers import ops
from allmos.layers.embedding import ParallelLMHead
from allmos.layers.linear import RowParallelLinear
from allmos.layers.norm import RMSNorm
from allmos.layers.parallel import ParallelInfo
from allmos.linear.torch_linear import TorchLinear
from allmos.registry import BuildContext

pytest.importorskip("triton")
from allmos.linear.kernels.gemm import MAX_GEMM_ROWS
from allmos.linear.triton_linear import TritonLinear, TritonLinearOptions

HIDDEN, OUT = 8, 6


def record(calls: list, name: str, result):
    def kernel(*args, **kwargs):
        calls.append(name)
        return result(*args)

    return kernel


def recording_kernels(calls: list):
    return types.SimpleNamespace(
        skinny_linear=record(calls, "skinny_linear", lambda x, w: x @ w.T),
        add_rms_norm_linear=record(calls, "add_rms_norm_linear", lambda x, r, nw, eps, w: (x @ w.T, x)),
        silu_mul_linear=record(calls, "silu_mul_linear", lambda gu, w: gu[:, : w.shape[1]] @ w.T),
    )


def recording_gemms(calls: list):
    return types.SimpleNamespace(
        MAX_GEMM_ROWS=MAX_GEMM_ROWS,
        new_split_counters=lambda device: torch.zeros(4, dtype=torch.int32, device=device),
        rows_linear=record(calls, "rows_linear", lambda x, w: x @ w.T),
        add_rms_norm_rows_linear=record(calls, "add_rms_norm_rows_linear", lambda x, r, nw, eps, w: (x @ w.T, x)),
        silu_mul_rows_linear=record(calls, "silu_mul_rows_linear", lambda gu, w: gu[:, : w.shape[1]] @ w.T),
    )


def recording_plugin(calls: list, **options) -> TritonLinear:
    plugin = TritonLinear(TritonLinearOptions(pdl=False, **options), BuildContext())
    plugin.kernels, plugin.gemms = recording_kernels(calls), recording_gemms(calls)
    return plugin


@pytest.fixture
def modules():
    torch.manual_seed(0)
    proj = RowParallelLinear(HIDDEN, OUT, bias=True, tp=ParallelInfo())
    proj.weight.data.normal_()
    proj.bias.data.normal_()
    return proj, RMSNorm(HIDDEN, 1e-6, ops.Ops())


GEMVS = ["skinny_linear", "add_rms_norm_linear", "silu_mul_linear"]
GEMMS = ["rows_linear", "add_rms_norm_rows_linear", "silu_mul_rows_linear"]


@pytest.mark.parametrize(
    "gemm,rows,expected",
    [
        (False, 1, GEMVS),
        (False, 3, []),
        (True, 1, GEMVS),
        (True, 2, GEMMS),
        (True, MAX_GEMM_ROWS, GEMMS),
        (True, MAX_GEMM_ROWS + 1, []),
    ],
)
def test_triton_linear_takes_its_kernels_for_the_steps_they_are_for(modules, gemm, rows, expected):
    proj, norm = modules
    calls = []
    plugin = recording_plugin(calls, gemm=gemm)
    x = torch.randn(rows, HIDDEN)
    y = plugin.project(proj, x)
    plugin.norm_project(norm, x, torch.randn(rows, HIDDEN), proj)
    plugin.act_project(ops.silu_and_mul, torch.randn(rows, 2 * HIDDEN), proj)
    assert calls == expected
    torch.testing.assert_close(y, proj(x))  # the kernel path finishes the layer too (bias here)


def test_torch_linear_is_the_unfused_modules(modules):
    proj, norm = modules
    x, residual = torch.randn(1, HIDDEN), torch.randn(1, HIDDEN)
    y, new_residual = TorchLinear(None, BuildContext()).norm_project(norm, x, residual, proj)
    normed, expected_residual = norm(x, residual)
    torch.testing.assert_close(y, proj(normed))
    torch.testing.assert_close(new_residual, expected_residual)
    y, first_residual = TorchLinear(None, BuildContext()).norm_project(norm, x, None, proj)
    assert first_residual is x and torch.allclose(y, proj(norm(x)))


@pytest.mark.parametrize("pdl", [False, True])
def test_triton_linear_passes_its_pdl_option_to_every_kernel(modules, pdl):
    proj, norm = modules
    plugin, seen = TritonLinear(TritonLinearOptions(pdl=pdl), BuildContext()), []

    def kernel(*args, pdl):
        seen.append(pdl)
        x, w = args[0], args[-1]
        return (x @ w.T, x) if len(args) == 5 else x[:, : w.shape[1]] @ w.T

    plugin.kernels = types.SimpleNamespace(skinny_linear=kernel, add_rms_norm_linear=kernel, silu_mul_linear=kernel)
    x = torch.randn(1, HIDDEN)
    plugin.project(proj, x)
    plugin.norm_project(norm, x, torch.randn(1, HIDDEN), proj)
    plugin.act_project(ops.silu_and_mul, torch.randn(1, 2 * HIDDEN), proj)
    assert seen == [pdl] * 3


def test_the_lm_head_takes_the_gemv_but_not_the_multi_row_gemm():
    head = ParallelLMHead(11, HIDDEN, ParallelInfo())
    head.weight.data.normal_()
    calls = []
    plugin = recording_plugin(calls, gemm=True)
    plugin.project(head, torch.randn(1, HIDDEN))
    x = torch.randn(4, HIDDEN)
    torch.testing.assert_close(plugin.project(head, x), head(x))
    assert calls == ["skinny_linear"]


def test_triton_linear_launches_the_gemms_plainly_with_one_set_of_counters(modules):
    proj, norm = modules
    plugin, seen = TritonLinear(TritonLinearOptions(pdl=True, gemm=True), BuildContext()), []

    def kernel(*args, counters, pdl):
        seen.append((pdl, counters))
        x, w = args[0], args[-1]
        return (x @ w.T, x) if len(args) == 5 else x[:, : w.shape[1]] @ w.T

    plugin.gemms = recording_gemms([])
    plugin.gemms.rows_linear = plugin.gemms.add_rms_norm_rows_linear = plugin.gemms.silu_mul_rows_linear = kernel
    x = torch.randn(5, HIDDEN)
    plugin.project(proj, x)
    plugin.norm_project(norm, x, torch.randn(5, HIDDEN), proj)
    plugin.act_project(ops.silu_and_mul, torch.randn(5, 2 * HIDDEN), proj)
    assert [pdl for pdl, _ in seen] == [False] * 3  # linear.pdl is for the GEMVs (TritonLinear's doc)
    assert all(counters is seen[0][1] for _, counters in seen)
