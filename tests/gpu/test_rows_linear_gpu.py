"""GPU tests of the multi-row tensor-core GEMMs (allmos/linear/kernels/gemm.py) at Qwen3-0.6B shapes
in bf16, against the torch path (the ops in allmos/layers/ops.py, then F.linear), with split-K's programs
running concurrently: every slice count gives the same bits, run after run, and leaves the counters
zeroed, eagerly and replayed from a CUDA graph, with and without programmatic dependent launch.

Skipped without CUDA, and under TRITON_INTERPRET=1 (rows_linear_interpreter_kernels.py covers that).
"""

import importlib

import pytest
import torch
import torch.nn.functional as F
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

_rows = importlib.import_module("allmos.linear.kernels.gemm")
_ops = importlib.import_module("allmos.layers.ops")

HIDDEN, QKV_OUT, Q_OUT, INTERMEDIATE = 1024, 4096, 2048, 3072  # Qwen3-0.6B
EPS = 1e-6
DEVICE = "cuda"
DTYPE = torch.bfloat16
TOLERANCE = {"atol": 2e-2, "rtol": 1e-2}
ROWS = [2, 16, 100, 256]
SPLITS = [1, 2, 4, 8]


def randn(*shape, gen, scale=1.0):
    return (scale * torch.randn(*shape, generator=gen, device=DEVICE)).to(DTYPE)


def make_weight(n, k, gen):
    return randn(n, k, gen=gen, scale=k**-0.5)


def assert_matches_torch_path(y, activation, weight, min_exact=0.9):
    """Close to the torch path (cuBLAS), and (by default) nearly everywhere bit for bit the float64
    product of the torch path's bf16 activation rounded once: the prologue rounds where the torch ops do."""
    torch.testing.assert_close(y, F.linear(activation, weight), **TOLERANCE)
    exact = (activation.double() @ weight.double().T).to(DTYPE)
    matching = (y == exact).float().mean()
    assert matching > min_exact, f"only {matching:.1%} of the outputs match the rounded float64 product"


@pytest.fixture
def counters():
    c = _rows.new_split_counters(DEVICE)
    yield c
    torch.cuda.synchronize()
    assert not c.any(), "a split-K launch left a counter set"


def config(split_k):
    return {"block_m": 64, "block_n": 64, "block_k": 64, "split_k": split_k}


@pytest.mark.parametrize("split_k", SPLITS)
@pytest.mark.parametrize("rows", ROWS)
def test_rows_linear_o(rows, split_k, counters):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    x, weight = randn(rows, Q_OUT, gen=gen), make_weight(HIDDEN, Q_OUT, gen)
    assert_matches_torch_path(_rows.rows_linear(x, weight, counters=counters, config=config(split_k)), x, weight)


@pytest.mark.parametrize("with_residual", [True, False], ids=["add_rms_norm", "rms_norm"])
@pytest.mark.parametrize("split_k", SPLITS)
@pytest.mark.parametrize("rows", ROWS)
def test_add_rms_norm_rows_linear_qkv(rows, split_k, with_residual, counters):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    x, residual = randn(rows, HIDDEN, gen=gen), randn(rows, HIDDEN, gen=gen)
    norm_weight = (1 + 0.5 * torch.randn(HIDDEN, generator=gen, device=DEVICE)).to(DTYPE)
    weight = make_weight(QKV_OUT, HIDDEN, gen)
    if with_residual:
        normed, expected_residual = _ops.add_rms_norm(x, residual, norm_weight, EPS)
    else:
        residual, normed, expected_residual = None, _ops.rms_norm(x, norm_weight, EPS), x
    y, new_residual = _rows.add_rms_norm_rows_linear(
        x, residual, norm_weight, EPS, weight, counters=counters, config=config(split_k)
    )
    # the norm rounds elsewhere (the module's doc): about 45% bit-exact, where the SiLU and plain ones are 90+%
    assert_matches_torch_path(y, normed, weight, min_exact=0.3)
    assert torch.equal(new_residual, expected_residual)


@pytest.mark.parametrize("split_k", SPLITS)
@pytest.mark.parametrize("rows", ROWS)
def test_silu_mul_rows_linear_down(rows, split_k, counters):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    gate_up, weight = randn(rows, 2 * INTERMEDIATE, gen=gen, scale=2.0), make_weight(HIDDEN, INTERMEDIATE, gen)
    y = _rows.silu_mul_rows_linear(gate_up, weight, counters=counters, config=config(split_k))
    assert_matches_torch_path(y, _ops.silu_and_mul(gate_up), weight)


@pytest.mark.parametrize("rows", [2, 48, 256])
def test_default_configs(rows, counters):
    gen = torch.Generator(device=DEVICE).manual_seed(rows)
    gate_up, weight = randn(rows, 2 * INTERMEDIATE, gen=gen, scale=2.0), make_weight(HIDDEN, INTERMEDIATE, gen)
    y = _rows.silu_mul_rows_linear(gate_up, weight, counters=counters)
    assert_matches_torch_path(y, _ops.silu_and_mul(gate_up), weight)


def chain(x, residual, layers, counters, pdl, split_k=4):
    """Layers of norm+qkv-like, plain and SiLU+down GEMMs, each reading the previous one's output."""
    outputs = []
    for norm_weight, w_in, w_mid, w_down in layers:
        h, residual = _rows.add_rms_norm_rows_linear(
            x, residual, norm_weight, EPS, w_in, counters=counters, config=config(split_k), pdl=pdl
        )
        h = _rows.rows_linear(h, w_mid, counters=counters, config=config(split_k), pdl=pdl)
        x = _rows.silu_mul_rows_linear(h, w_down, counters=counters, config=config(split_k), pdl=pdl)
        outputs += [h, x, residual]
    return outputs


def test_split_k_chain_is_deterministic_eager_and_in_a_graph_with_and_without_pdl(counters):
    """The last slice to arrive sums the slices in slice order, so the bits never depend on arrival
    order; a counter left set, or read before a slice's partial landed, would break this."""
    gen = torch.Generator(device=DEVICE).manual_seed(7)
    layers = [
        (
            (1 + 0.1 * torch.randn(HIDDEN, generator=gen, device=DEVICE)).to(DTYPE),
            make_weight(2 * INTERMEDIATE, HIDDEN, gen),
            make_weight(2 * INTERMEDIATE, 2 * INTERMEDIATE, gen),
            make_weight(HIDDEN, INTERMEDIATE, gen),
        )
        for _ in range(4)
    ]
    x, residual = randn(128, HIDDEN, gen=gen), randn(128, HIDDEN, gen=gen)
    reference = chain(x, residual, layers, counters, pdl=False)
    for pdl in (False, True):
        for _ in range(3):
            assert all(torch.equal(a, b) for a, b in zip(chain(x, residual, layers, counters, pdl=pdl), reference))
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        captured = chain(x, residual, layers, counters, pdl=True)
    for replay in range(5):
        graph.replay()
        torch.cuda.synchronize()
        assert all(torch.equal(a, b) for a, b in zip(captured, reference)), f"replay {replay} differs"
        eager = chain(x, residual, layers, counters, pdl=True)
        assert all(torch.equal(a, b) for a, b in zip(eager, reference))
