"""Which path each linear plugin takes: linear=triton sends single-token steps to its GEMV kernels
(recorded here by a stand-in) and everything else to the unfused modules; linear=torch never leaves
them. The kernels themselves are tested in skinny_linear_interpreter_kernels.py and on the GPU."""

import types

import pytest
import torch

from allmos.layers import ops
from allmos.layers.linear import RowParallelLinear
from allmos.layers.norm import RMSNorm
from allmos.layers.parallel import ParallelInfo
from allmos.linear.torch_linear import TorchLinear

pytest.importorskip("triton")
from allmos.linear.triton_linear import TritonLinear, TritonLinearOptions

HIDDEN, OUT = 8, 6


def recording_kernels(calls: list):
    def record(name, result):
        def kernel(*args, **kwargs):
            calls.append(name)
            return result(*args)

        return kernel

    return types.SimpleNamespace(
        skinny_linear=record("skinny_linear", lambda x, w: x @ w.T),
        add_rms_norm_linear=record("add_rms_norm_linear", lambda x, r, nw, eps, w: (x @ w.T, x)),
        silu_mul_linear=record("silu_mul_linear", lambda gu, w: gu[:, : w.shape[1]] @ w.T),
    )


@pytest.fixture
def modules():
    torch.manual_seed(0)
    proj = RowParallelLinear(HIDDEN, OUT, bias=True, tp=ParallelInfo())
    proj.weight.data.normal_()
    proj.bias.data.normal_()
    return proj, RMSNorm(HIDDEN, 1e-6, ops.Ops())


@pytest.mark.parametrize("rows,expected", [(1, ["skinny_linear", "add_rms_norm_linear", "silu_mul_linear"]), (3, [])])
def test_triton_linear_runs_its_kernels_for_single_token_steps_only(modules, rows, expected):
    proj, norm = modules
    plugin, calls = TritonLinear(TritonLinearOptions(pdl=False)), []
    plugin.kernels = recording_kernels(calls)
    x = torch.randn(rows, HIDDEN)
    y = plugin.project(proj, x)
    plugin.norm_project(norm, x, torch.randn(rows, HIDDEN), proj)
    plugin.act_project(ops.silu_and_mul, torch.randn(rows, 2 * HIDDEN), proj)
    assert calls == expected
    torch.testing.assert_close(y, proj(x))  # the kernel path finishes the layer too (bias here)


def test_torch_linear_is_the_unfused_modules(modules):
    proj, norm = modules
    x, residual = torch.randn(1, HIDDEN), torch.randn(1, HIDDEN)
    y, new_residual = TorchLinear(None).norm_project(norm, x, residual, proj)
    normed, expected_residual = norm(x, residual)
    torch.testing.assert_close(y, proj(normed))
    torch.testing.assert_close(new_residual, expected_residual)
    y, first_residual = TorchLinear(None).norm_project(norm, x, None, proj)
    assert first_residual is x and torch.allclose(y, proj(norm(x)))


@pytest.mark.parametrize("pdl", [False, True])
def test_triton_linear_passes_its_pdl_option_to_every_kernel(modules, pdl):
    proj, norm = modules
    plugin, seen = TritonLinear(TritonLinearOptions(pdl=pdl)), []

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
