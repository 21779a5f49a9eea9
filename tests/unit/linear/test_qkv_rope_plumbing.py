"""rope.fuse_qkv at the boundary and in the plumbing: an option of rope=triton only, off by default, refused
beside attention.fuse_rope; the attention layer offers decode steps' prologue (QKVRope) to the qkv projection
and skips what it did (the KV store still writes where the rope kernel would not have); linear=triton takes
it at one-token steps only, linear=torch never. What the kernel computes: qkv_rope_interpreter_kernels.py
(CPU) and test_qkv_rope_gpu.py; the whole engine: test_triton_engine_cpu.py."""

import types

import pytest
import torch

pytest.importorskip("triton")
from attention_recorders import TINY, RecordingBackend, RecordingRope, RecordingStore

from allmos.attention.layer import PagedAttention
from allmos.config import EngineConfig
from allmos.errors import ConfigError
from allmos.graph_runner.cuda_graph import StaticInputs
from allmos.kv_store.base import KVPages
from allmos.layers import ops
from allmos.layers.linear import QKVParallelLinear
from allmos.layers.norm import RMSNorm
from allmos.layers.parallel import ParallelInfo
from allmos.layers.rotary import RotaryEmbedding
from allmos.linear.torch_linear import TorchLinear
from allmos.linear.triton_linear import TritonLinear, TritonLinearOptions
from allmos.registry import BuildContext
from allmos.rope.base import QKVRope
from allmos.rope.triton_rope import TritonRopeOptions
from allmos.validation import validate


@pytest.fixture
def interpreter(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "1")  # the plugins' checks accept the CPU only under it


def config(rope, **switches) -> EngineConfig:
    common = dict(architecture=TINY, random_weights="always", device="cpu", linear="triton", attention="triton")
    return EngineConfig.create(None, rope=rope, **(common | switches))


def test_an_option_of_rope_triton_on_by_default(interpreter):
    validate(config({"name": "triton", "fuse_qkv": True}))
    validate(config({"name": "triton", "fuse_qkv": True}, kv_cache_dtype="fp8"))
    validate(config({"name": "triton", "fuse_qkv": False}))
    assert TritonRopeOptions(name="triton").fuse_qkv is True  # the batch-1 step 5% shorter on an H100
    with pytest.raises(ConfigError, match="unknown option.*fuse_qkv"):
        validate(config({"name": "torch", "fuse_qkv": True}))


def test_refused_beside_the_decode_kernels_own_rope(interpreter):
    with pytest.raises(ConfigError, match="^rope.fuse_qkv: .*attention.fuse_rope=true") as refused:
        validate(config({"name": "triton", "fuse_qkv": True}, attention={"name": "triton", "fuse_rope": True}))
    assert refused.value.switch == "rope.fuse_qkv"
    validate(config({"name": "triton", "fuse_qkv": False}, attention={"name": "triton", "fuse_rope": True}))
    with pytest.raises(ConfigError, match="^rope.fuse_qkv: .*set rope.fuse_qkv=false"):
        validate(config("triton", attention={"name": "triton", "fuse_rope": True}))  # the default refused too


def attention_layer(rope_stores_kv: bool, rope_in_qkv: bool):
    backend, rope, store = RecordingBackend(fuses=False), RecordingRope(), RecordingStore()
    layer = PagedAttention(backend, store, rope, rope_stores_kv=rope_stores_kv, rope_in_qkv=rope_in_qkv)
    cache = torch.zeros(4, 16, 2, 16)
    layer.bind_cache(cache, cache)
    return layer, backend, rope, store


def step_meta(is_prefill: bool):
    meta = StaticInputs(4, 2, 16, 24, torch.device("cpu")).meta(1, 2)
    meta.is_prefill = is_prefill
    return meta


NORMS = (RMSNorm(16, 1e-6, None), RMSNorm(16, 1e-6, None))
ROTARY = RotaryEmbedding(16, 64, 1e6, None, ops=None)


@pytest.mark.parametrize("rope_stores_kv", [True, False])
def test_decode_steps_offer_the_prologue_with_the_pages_where_the_rope_stores(rope_stores_kv):
    layer, *_ = attention_layer(rope_stores_kv, rope_in_qkv=True)
    meta, positions = step_meta(is_prefill=False), torch.tensor([5])
    rope = layer.qkv_rope(positions, NORMS, ROTARY, meta)
    pages = KVPages(layer.k_cache, layer.v_cache, meta.slot_mapping, None) if rope_stores_kv else None
    assert rope == QKVRope(positions, *NORMS, ROTARY, 4, 2, pages)


@pytest.mark.parametrize("rope_in_qkv,is_prefill", [(True, True), (False, False)])
def test_prefill_steps_and_an_unfused_rope_offer_nothing(rope_in_qkv, is_prefill):
    layer, *_ = attention_layer(rope_stores_kv=True, rope_in_qkv=rope_in_qkv)
    assert layer.qkv_rope(torch.tensor([5]), NORMS, ROTARY, step_meta(is_prefill)) is None


@pytest.mark.parametrize("rope_stores_kv", [True, False])
def test_what_the_projection_did_is_skipped(rope_stores_kv):
    layer, backend, rope, store = attention_layer(rope_stores_kv, rope_in_qkv=True)
    q, k, v = torch.zeros(1, 4, 16), torch.zeros(1, 2, 16), torch.zeros(1, 2, 16)
    layer(torch.tensor([5]), q, k, v, NORMS, ROTARY, step_meta(is_prefill=False), rope_done=True)
    assert rope.calls == 0 and store.calls == (0 if rope_stores_kv else 1)
    assert [c[0] for c in backend.calls] == ["forward"] and backend.calls[0][1] is q


def qkv_projection():
    proj = QKVParallelLinear(8, 16, 4, 2, False, ParallelInfo())
    proj.weight.data = torch.randn(proj.weight.shape)
    return proj


@pytest.mark.parametrize("rows", [1, 3])
def test_linear_triton_takes_the_prologue_at_one_row_only(rows):
    calls = []
    plugin = TritonLinear(TritonLinearOptions(pdl=False, gemm=False), BuildContext())

    def fused(x, residual, norm_weight, eps, weight, bias, rope, counters, pdl):
        calls.append((rope, counters.numel()))
        return x @ weight.T, x

    plugin.rope_kernels = types.SimpleNamespace(
        add_rms_norm_qkv_rope=fused, rope_counters=lambda heads, device: torch.zeros(heads, dtype=torch.int32)
    )
    plugin.kernels = types.SimpleNamespace(add_rms_norm_linear=lambda x, r, nw, eps, w, pdl: (x @ w.T, x))
    proj, norm, rope = (
        qkv_projection(),
        RMSNorm(8, 1e-6, ops),
        QKVRope(torch.tensor([5]), None, None, ROTARY, 4, 2, None),
    )
    x = torch.randn(rows, 8)
    qkv, _, applied = plugin.norm_project_qkv(norm, x, None, proj, rope)
    assert applied == (rows == 1) and qkv.shape == (rows, proj.weight.shape[0])
    assert calls == ([(rope, 8)] if rows == 1 else [])


def test_linear_torch_never_takes_it():
    plugin = TorchLinear(None, BuildContext())
    assert not plugin.takes_rope and TritonLinear.takes_rope
    proj, norm = qkv_projection(), RMSNorm(8, 1e-6, ops)
    rope = QKVRope(torch.tensor([5]), None, None, ROTARY, 4, 2, None)
    qkv, _, applied = plugin.norm_project_qkv(norm, torch.randn(1, 8), None, proj, rope)
    assert not applied and qkv.shape == (1, proj.weight.shape[0])
