"""attention.fuse_rope at the boundary and in the plumbing: refused where it cannot run (a backend other than
triton has no such option; fp8 pages), the attention layer hands decode steps raw to a backend that fuses
the rope (no rope plugin, no KV store) and prefill steps to the usual prologue, and the Triton backend passes
the norms, rotary tables, positions and slots to the decode kernel. What the kernel computes:
decode_rope_interpreter_kernels.py (CPU) and test_triton_kernels_gpu.py / test_gpu_engine.py (GPU)."""

import types

import pytest
import torch

pytest.importorskip("triton")
from attention_recorders import HEADS, TINY, RecordingBackend, RecordingRope, RecordingStore

from allmos.attention.backend import DecodeRopeInputs
from allmos.attention.layer import PagedAttention
from allmos.attention.triton_backend import TritonBackend, TritonOptions
from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.graph_runner.cuda_graph import StaticInputs
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.registry import BuildContext
from allmos.validation import validate


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the plugin's check accepts the CPU only under it


def config(attention, **options) -> EngineConfig:
    rope = {"name": "triton", "fuse_qkv": False}  # the other place for the decode step's rope, on by default
    common = dict(architecture=TINY, random_weights="always", device="cpu", rope=rope)
    return EngineConfig.create(None, attention=attention, **common, **options)


def test_the_option_runs_with_triton_and_the_models_dtype(interpreter):
    validate(config({"name": "triton", "fuse_rope": True}))
    assert TritonOptions(name="triton").fuse_rope is False  # off until measured on a GPU


def test_fp8_pages_are_refused_naming_both_switches(interpreter):
    with pytest.raises(ConfigError, match="^attention.fuse_rope: .*kv_cache_dtype=fp8") as refused:
        validate(config({"name": "triton", "fuse_rope": True}, kv_cache_dtype="fp8"))
    assert refused.value.switch == "attention.fuse_rope"


@pytest.mark.parametrize("backend", ["sdpa", "flash"])
def test_other_backends_have_no_such_option(backend, interpreter):
    with pytest.raises(ConfigError, match="unknown option.*fuse_rope"):
        validate(config({"name": backend, "fuse_rope": True}))


def layer_step(fuses: bool, is_prefill: bool):
    backend, rope, store = RecordingBackend(fuses), RecordingRope(), RecordingStore()
    layer = PagedAttention(backend, store, rope, rope_stores_kv=False, rope_in_qkv=False)
    cache = torch.zeros(4, 16, 2, 16)
    layer.bind_cache(cache, cache)
    meta = StaticInputs(4, 2, 16, 24, torch.device("cpu")).meta(3, 2)
    meta.is_prefill = is_prefill
    q, k, v = torch.zeros(3, 4, 16), torch.zeros(3, 2, 16), torch.zeros(3, 2, 16)
    norms = (RMSNorm(16, 1e-6, None), RMSNorm(16, 1e-6, None))
    rotary = RotaryEmbedding(16, 64, 1e6, None, ops=None)
    positions = torch.arange(3)
    layer(positions, q, k, v, norms, rotary, meta)
    return backend.calls, rope.calls, store.calls, (q, k, v, positions, norms, rotary)


def test_a_backend_that_fuses_the_rope_gets_decode_steps_raw():
    calls, rope_calls, store_calls, (q, k, v, positions, norms, rotary) = layer_step(fuses=True, is_prefill=False)
    assert rope_calls == 0 and store_calls == 0 and len(calls) == 1
    name, q_in, k_in, v_in, rope = calls[0]
    assert name == "fused" and q_in is q and k_in is k and v_in is v
    assert rope == DecodeRopeInputs(positions, *norms, rotary)


@pytest.mark.parametrize("fuses,is_prefill", [(True, True), (False, False), (False, True)])
def test_prefill_steps_and_other_backends_keep_the_prologue(fuses, is_prefill):
    calls, rope_calls, store_calls, (q, *_) = layer_step(fuses, is_prefill)
    assert rope_calls == 1 and store_calls == 1 and [c[0] for c in calls] == ["forward"]
    assert torch.equal(calls[0][1], q + 1)  # the rotated q


@pytest.mark.parametrize("with_norm", [True, False])
def test_the_triton_backend_hands_the_rope_to_the_decode_kernel(with_norm):
    backend = TritonBackend(TritonOptions(name="triton", fuse_rope=True), BuildContext(heads=HEADS))
    assert backend.fuses_rope()
    assert not TritonBackend(TritonOptions(name="triton"), BuildContext(heads=HEADS)).fuses_rope()
    calls = []
    real = backend.decode
    backend.decode = types.SimpleNamespace(
        paged_decode_attention=lambda *args, **kwargs: calls.append(kwargs), DecodeRope=real.DecodeRope
    )
    meta = backend.build_metadata(StaticInputs(4, 2, 16, 24, torch.device("cpu")).meta(3, 2))
    cache = torch.zeros(4, 16, 2, 16)
    q, k, v = torch.zeros(3, 4, 16), torch.ones(3, 2, 16), torch.ones(3, 2, 16)
    norms = (RMSNorm(16, 1e-5, None), RMSNorm(16, 1e-5, None)) if with_norm else (None, None)
    rotary = RotaryEmbedding(16, 64, 1e6, None, ops=None)
    positions = torch.arange(3)
    backend.forward_decode_fused(q, k, v, cache, cache, meta, DecodeRopeInputs(positions, *norms, rotary))
    backend.forward(q, k, v, cache, cache, meta)
    fused, plain = calls
    rope = fused["rope"]
    assert rope.k is k and rope.v is v and rope.positions is positions and rope.slot_mapping is meta.slot_mapping
    assert rope.cos is rotary.cos and rope.sin is rotary.sin
    if with_norm:
        assert rope.q_weight is norms[0].weight and rope.k_weight is norms[1].weight and rope.eps == 1e-5
    else:
        assert rope.q_weight is None and rope.k_weight is None
    assert plain["rope"] is None and fused["seq_order"] is meta.seq_order and fused["counters"] is meta.counters
