"""CPU tests of the persistent batch-1 layers probe (allmos/microbench/persistent_layers.py) through the
Triton interpreter (TRITON_INTERPRET=1): one program, which does every row of every phase (programs run one
after another here, so a barrier among several would wait forever), against the torch reference of its math.

Like triton_interpreter_kernels.py, this module must run in a pytest process of its own; it skips itself on
machines with CUDA unless TRITON_INTERPRET=1 is already set. GPU test (all SMs, the barrier for real):
tests/gpu/test_chain_probes_gpu.py.
"""

import importlib

import pytest
import torch
from triton_guards import interpreter_bf16_rounding, interpreter_loop_bounds, use_triton_interpreter  # noqa: F401

use_triton_interpreter("test_chain_probes_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_bf16_rounding", "interpreter_loop_bounds")]

_layers = importlib.import_module("allmos.microbench.persistent_layers")
_attention = importlib.import_module("allmos.microbench.persistent_attention")

EPS = 1e-6
# hidden, qkv width, q width, intermediate: widths that are not powers of 2 (padded tiles, masked rows)
SHAPES = [(64, 128, 64, 96), (48, 112, 32, 80)]


def weights(layers, hidden, qkv_width, inter, dtype, seed=0):
    gen = torch.Generator().manual_seed(seed)

    def weight(n, k):
        return (torch.randn(n, k, generator=gen) * k**-0.5).to(dtype)

    def norm():
        return (1 + 0.2 * torch.randn(hidden, generator=gen)).to(dtype)

    per_layer = [
        {
            "qkv": weight(qkv_width, hidden),
            "o": weight(hidden, qkv_width // 2),
            "gate_up": weight(2 * inter, hidden),
            "down": weight(hidden, inter),
            "norm1": norm(),
            "norm2": norm(),
        }
        for _ in range(layers)
    ]
    return _layers.stacked(per_layer)


@pytest.mark.parametrize("prefetch", ["registers", "none"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_persistent_kernel_computes_every_layer_of_the_reference(shape, dtype, prefetch):
    hidden, qkv_width, q_width, inter = shape
    w = weights(3, hidden, qkv_width, inter, dtype)
    w["o"] = w["o"][:, :, :q_width].contiguous()  # o reads q's columns of qkv
    h = torch.randn(hidden, generator=torch.Generator().manual_seed(1)).to(dtype)
    runner = _layers.PersistentLayers(w, q_width, EPS, programs=1, prefetch=prefetch, num_warps=4)
    got = runner.run(h.clone())
    want = _layers.reference_layers(h.clone(), w, q_width, EPS)
    assert int(runner.counter.item()) == runner.arrivals() == 3 * 4
    if dtype == torch.float32:
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    else:  # the same roundings in the same places: nearly bit for bit (a sum in another order may round apart)
        torch.testing.assert_close(got, want, atol=3e-2, rtol=2e-2)
        assert (got == want).float().mean() > 0.8


def test_prefetch_into_the_l2_and_unknown_modes_are_refused_here():
    """The L2 mode issues inline PTX, which the interpreter cannot run: refused, not silently run as another mode
    (tests/kernels/test_triton_compile_cpu.py compiles it; the GPU test runs it)."""
    w = weights(1, *SHAPES[0][:2], SHAPES[0][3], torch.float32)
    with pytest.raises(ValueError, match="prefetch='l2' issues inline PTX"):
        _layers.PersistentLayers(w, SHAPES[0][2], EPS, programs=1, prefetch="l2")
    with pytest.raises(ValueError, match="prefetch must be one of registers, none, l2; got 'l3'"):
        _layers.PersistentLayers(w, SHAPES[0][2], EPS, programs=1, prefetch="l3")


def test_the_reference_differs_when_a_layer_is_left_out():
    """The comparison above can fail: two layers of the reference are not three."""
    w = weights(3, 64, 128, 96, torch.float32)
    w["o"] = w["o"][:, :, :64].contiguous()
    two = {name: t[:2] for name, t in w.items()}
    h = torch.randn(64)
    assert not torch.allclose(_layers.reference_layers(h, w, 64, EPS), _layers.reference_layers(h, two, 64, EPS))


HEADS = {"num_heads": 4, "num_kv_heads": 2, "head_dim": 16, "block_size": 4}


def cloned(attention: dict) -> dict:
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in attention.items()}


# (context, splits): one split; splits of one tile each; splits whose tile is partly masked; a new page's first
# token, with the last split empty (9 tokens in splits of 3)
@pytest.mark.parametrize("context,splits", [(11, 1), (11, 3), (11, 2), (9, 4)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_the_attention_phase_matches_the_reference_layer_and_stores_the_new_token(context, splits, dtype):
    """qkv -> q/k norm, RoPE, the new K/V stored in its page, softmax over the cached tokens and the new one,
    splits merged -> o: the stream and the caches after two layers match the torch reference."""
    heads = HEADS | {"splits": splits}
    q_width = heads["num_heads"] * heads["head_dim"]
    qkv_width = q_width + 2 * heads["num_kv_heads"] * heads["head_dim"]
    w = weights(2, 48, qkv_width, 80, dtype)
    w["o"] = w["o"][:, :, :q_width].contiguous()
    attention = _attention.attention_inputs(2, context, heads, "cpu", dtype)
    want_attention = cloned(attention)
    h = torch.randn(48, generator=torch.Generator().manual_seed(1)).to(dtype)
    runner = _layers.PersistentLayers(w, q_width, EPS, programs=1, num_warps=4, attention=attention)
    got = runner.run(h.clone())
    want = _layers.reference_layers(h.clone(), w, q_width, EPS, attention=want_attention)
    assert int(runner.counter.item()) == runner.arrivals() == 2 * 5
    tolerance = {"atol": 1e-4, "rtol": 1e-4} if dtype == torch.float32 else {"atol": 3e-2, "rtol": 2e-2}
    torch.testing.assert_close(got, want, **tolerance)
    for cache in ("k_cache", "v_cache"):
        torch.testing.assert_close(attention[cache], want_attention[cache], **tolerance)
    assert not torch.equal(
        attention["k_cache"], cloned(_attention.attention_inputs(2, context, heads, "cpu", dtype))["k_cache"]
    )


def test_the_attention_reference_reads_every_cached_token():
    """The comparison above can fail: the reference's output moves when an old cached token changes."""
    heads = HEADS
    qkv = torch.randn(8 * 16)
    attention = _attention.attention_inputs(1, 11, heads, "cpu", torch.float32)
    first = _attention.reference_attention(qkv, 0, cloned(attention), EPS)
    attention["v_cache"][0, attention["block_table"][0], 1] += 1.0
    assert not torch.allclose(first, _attention.reference_attention(qkv, 0, attention, EPS))
