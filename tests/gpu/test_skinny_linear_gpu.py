"""GPU tests of the single-row linear kernels with fused prologues (allmos/linear/kernels/gemv.py)
at Qwen3-0.6B shapes in bf16, against the torch path (the ops in allmos/layers/ops.py, then F.linear).

Skipped without CUDA, and when TRITON_INTERPRET=1 is set (the kernels would run in the interpreter; the
CPU tests in skinny_linear_interpreter_kernels.py cover that).
"""

import importlib

import pytest
import torch
import torch.nn.functional as F
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

_skinny = importlib.import_module("allmos.linear.kernels.gemv")
_ops = importlib.import_module("allmos.layers.ops")

HIDDEN, Q_OUT, KV_OUT, INTERMEDIATE, VOCAB = 1024, 2048, 1024, 3072, 151936  # Qwen3-0.6B
EPS = 1e-6
DEVICE = "cuda"
DTYPE = torch.bfloat16
TOLERANCE = {"atol": 2e-2, "rtol": 1e-2}
NORM_OUT_FEATURES = {"qkv": Q_OUT + 2 * KV_OUT, "gate_up": 2 * INTERMEDIATE, "lm_head": VOCAB}
PLAIN_SHAPES = {"qkv": (Q_OUT + 2 * KV_OUT, HIDDEN), "o": (HIDDEN, Q_OUT), "down": (HIDDEN, INTERMEDIATE)}
ROWS = [1, 2, 8]
SWEEP_CONFIGS = [{}, {"block_n": 4, "block_k": 256}, {"block_n": 16, "block_k": 512}, {"block_n": 32, "num_warps": 8}]


def randn(*shape, gen, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, device=DEVICE)).to(DTYPE)


def make_weight(n, k, gen):
    return randn(n, k, gen=gen, scale=k**-0.5)


def assert_matches_torch_path(y, activation, weight):
    """Close to the torch path (cuBLAS), and bit for bit (nearly everywhere) the float64 product of the
    torch path's bf16 activation rounded once: the kernel rounds where the torch ops do."""
    torch.testing.assert_close(y, F.linear(activation, weight), **TOLERANCE)
    exact = (activation.double() @ weight.double().T).to(DTYPE)
    matching = (y == exact).float().mean()
    assert matching > 0.9, f"only {matching:.1%} of the outputs match the rounded float64 product"


def norm_inputs(rows, n, gen):
    x, residual = randn(rows, HIDDEN, gen=gen), randn(rows, HIDDEN, gen=gen)
    norm_weight = (1 + 0.5 * torch.randn(HIDDEN, generator=gen, device=DEVICE)).to(DTYPE)
    return x, residual, norm_weight, make_weight(n, HIDDEN, gen)


@pytest.mark.parametrize("with_residual", [True, False], ids=["add_rms_norm", "rms_norm"])
@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("shape", NORM_OUT_FEATURES)
def test_add_rms_norm_linear(shape, rows, with_residual):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    x, residual, norm_weight, weight = norm_inputs(rows, NORM_OUT_FEATURES[shape], gen)
    residual = residual if with_residual else None
    inputs = [t for t in (x, residual, norm_weight) if t is not None]
    copies = [t.clone() for t in inputs]
    if with_residual:
        normed, expected_residual = _ops.add_rms_norm(x, residual, norm_weight, EPS)
    else:
        normed, expected_residual = _ops.rms_norm(x, norm_weight, EPS), x

    y, new_residual = _skinny.add_rms_norm_linear(x, residual, norm_weight, EPS, weight)
    assert_matches_torch_path(y, normed, weight)
    assert torch.equal(new_residual, expected_residual)
    assert all(torch.equal(t, c) for t, c in zip(inputs, copies)), "an input was modified"


@pytest.mark.parametrize("rows", ROWS)
def test_silu_mul_linear_down(rows):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    gate_up, weight = randn(rows, 2 * INTERMEDIATE, gen=gen, scale=2.0), make_weight(HIDDEN, INTERMEDIATE, gen)
    copy = gate_up.clone()
    y = _skinny.silu_mul_linear(gate_up, weight)
    assert_matches_torch_path(y, _ops.silu_and_mul(gate_up), weight)
    assert torch.equal(gate_up, copy)


@pytest.mark.parametrize("rows", ROWS)
@pytest.mark.parametrize("shape", PLAIN_SHAPES)
def test_skinny_linear(shape, rows):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    n, k = PLAIN_SHAPES[shape]
    x, weight = randn(rows, k, gen=gen), make_weight(n, k, gen)
    assert_matches_torch_path(_skinny.skinny_linear(x, weight), x, weight)


@pytest.mark.parametrize("config", SWEEP_CONFIGS, ids=str)
def test_bench_configs_at_one_row(config):
    gen = torch.Generator(device=DEVICE).manual_seed(0)
    x, residual, norm_weight, weight = norm_inputs(1, NORM_OUT_FEATURES["qkv"], gen)
    y, _ = _skinny.add_rms_norm_linear(x, residual, norm_weight, EPS, weight, **config)
    assert_matches_torch_path(y, _ops.add_rms_norm(x, residual, norm_weight, EPS)[0], weight)
    gate_up, down = randn(1, 2 * INTERMEDIATE, gen=gen), make_weight(HIDDEN, INTERMEDIATE, gen)
    assert_matches_torch_path(_skinny.silu_mul_linear(gate_up, down, **config), _ops.silu_and_mul(gate_up), down)


def test_replays_in_a_cuda_graph():
    """Captured once, a replay computes from the inputs' current values (as in a decode step's graph)."""
    gen = torch.Generator(device=DEVICE).manual_seed(1)
    x, residual, norm_weight, weight = norm_inputs(1, NORM_OUT_FEATURES["gate_up"], gen)
    down = make_weight(HIDDEN, INTERMEDIATE, gen)

    def step():
        gate_up, new_residual = _skinny.add_rms_norm_linear(x, residual, norm_weight, EPS, weight)
        return _skinny.silu_mul_linear(gate_up, down), new_residual

    step()  # compile outside the capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out, new_residual = step()
    x.copy_(randn(1, HIDDEN, gen=gen))
    residual.copy_(randn(1, HIDDEN, gen=gen))
    graph.replay()
    torch.cuda.synchronize()
    normed, expected_residual = _ops.add_rms_norm(x, residual, norm_weight, EPS)
    expected = F.linear(_ops.silu_and_mul(F.linear(normed, weight)), down)
    torch.testing.assert_close(out, expected, **TOLERANCE)
    assert torch.equal(new_residual, expected_residual)


def layer_chain(x, residual, layers, pdl):
    """Dependent kernels back to back, as in a decode step: each reads what the previous one wrote."""
    for norm_weight, gate_up_weight, down_weight, square_weight in layers:
        gate_up, residual = _skinny.add_rms_norm_linear(x, residual, norm_weight, EPS, gate_up_weight, pdl=pdl)
        x = _skinny.skinny_linear(_skinny.silu_mul_linear(gate_up, down_weight, pdl=pdl), square_weight, pdl=pdl)
    return x, residual


def chain_layers(count, gen):
    return [
        (
            (1 + 0.5 * torch.randn(HIDDEN, generator=gen, device=DEVICE)).to(DTYPE),
            make_weight(2 * INTERMEDIATE, HIDDEN, gen),
            make_weight(HIDDEN, INTERMEDIATE, gen),
            make_weight(HIDDEN, HIDDEN, gen),
        )
        for _ in range(count)
    ]


def test_pdl_launch_computes_what_the_plain_launch_does():
    """Programmatic dependent launch changes when a kernel starts, never what it reads: eagerly, and
    replayed from a CUDA graph (where the early starts become programmatic edges), a chain of dependent
    kernels gives bit for bit what plain launches give."""
    gen = torch.Generator(device=DEVICE).manual_seed(2)
    layers = chain_layers(8, gen)
    x, residual = randn(1, HIDDEN, gen=gen), randn(1, HIDDEN, gen=gen)
    expected = layer_chain(x, residual, layers, pdl=False)
    eager = layer_chain(x, residual, layers, pdl=True)
    assert all(torch.equal(a, b) for a, b in zip(eager, expected))

    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = layer_chain(x, residual, layers, pdl=True)
    for seed in range(3):
        x.copy_(randn(1, HIDDEN, gen=gen))
        residual.copy_(randn(1, HIDDEN, gen=gen))
        graph.replay()
        expected = layer_chain(x, residual, layers, pdl=False)
        torch.cuda.synchronize()
        assert all(torch.equal(a, b) for a, b in zip(captured, expected)), f"replay {seed} differs"
