"""CPU tests of the fused qk-norm + RoPE Triton kernel (allmos/rope/kernels/qk_rope.py) through the Triton
interpreter (TRITON_INTERPRET=1), against the reference ops in allmos/layers/ops.py.

Like triton_interpreter_kernels.py, this module must run in a pytest process of its own (TRITON_INTERPRET
is read when triton is first imported): test_triton_kernels_cpu.py runs it so. It skips itself on machines
with CUDA unless TRITON_INTERPRET=1 is already set. GPU tests: test_qk_rope_kernel_gpu.py.
"""

import importlib

import pytest
import torch
from triton_guards import interpreter_bf16_rounding, use_triton_interpreter  # noqa: F401 (fixtures)

use_triton_interpreter("test_qk_rope_kernel_gpu.py")  # before the first import of triton
pytestmark = [pytest.mark.interpreter, pytest.mark.usefixtures("interpreter_bf16_rounding")]

qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton
_ops = importlib.import_module("allmos.layers.ops")
_rotary = importlib.import_module("allmos.layers.rotary")

MAX_POSITIONS = 4096
EPS = 1e-6
# float32: the reduction order differs from torch's; 16-bit: one or two ulps (a different rounding of the
# normalized value propagates through the weight product and the rotation).
TOLERANCES = {
    torch.float32: {"atol": 1e-5, "rtol": 1e-5},
    torch.bfloat16: {"atol": 2e-2, "rtol": 1e-2},
    torch.float16: {"atol": 4e-3, "rtol": 2e-3},
}


def rope_tables(head_dim, theta=1e6):
    rotary = _rotary.RotaryEmbedding(head_dim, MAX_POSITIONS, theta, None, ops=None)
    return rotary.cos, rotary.sin


def make_case(num_tokens, num_heads, num_kv_heads, head_dim, dtype, with_norm, seed=0):
    """A packed qkv projection output, q/k/v as its views, positions and (optionally) norm weights."""
    gen = torch.Generator().manual_seed(seed)
    q_size, kv_size = num_heads * head_dim, num_kv_heads * head_dim
    qkv = (2 * torch.randn(num_tokens, q_size + 2 * kv_size, generator=gen)).to(dtype)
    q = qkv[:, :q_size].view(num_tokens, num_heads, head_dim)
    k = qkv[:, q_size : q_size + kv_size].view(num_tokens, num_kv_heads, head_dim)
    positions = torch.randint(0, MAX_POSITIONS, (num_tokens,), generator=gen)
    weights = (None, None)
    if with_norm:
        weights = tuple((1 + 0.5 * torch.randn(head_dim, generator=gen)).to(dtype) for _ in range(2))
    return qkv, q, k, positions, weights


def reference(positions, q, k, q_weight, k_weight, cos, sin):
    if q_weight is not None:
        q, k = _ops.rms_norm(q, q_weight, EPS), _ops.rms_norm(k, k_weight, EPS)
    return _ops.rope_qk(positions, q, k, cos, sin)


def run_kernel(num_tokens, num_heads, num_kv_heads, head_dim, dtype, with_norm, seed=0, swap_cos_sin=False):
    """(kernel q, kernel k, reference q, reference k); also checks the in-place contract and that v is intact."""
    qkv, q, k, positions, (q_weight, k_weight) = make_case(
        num_tokens, num_heads, num_kv_heads, head_dim, dtype, with_norm, seed
    )
    cos, sin = rope_tables(head_dim)
    expected_q, expected_k = reference(positions, q, k, q_weight, k_weight, cos, sin)
    before = qkv.clone()

    tables = (sin, cos) if swap_cos_sin else (cos, sin)
    out_q, out_k = qk_norm_rope_triton(positions, q, k, q_weight, k_weight, EPS, *tables)
    assert out_q is q and out_k is k
    v_start = (num_heads + num_kv_heads) * head_dim
    assert torch.equal(qkv[:, v_start:], before[:, v_start:]), "the v part of the packed tensor changed"
    return q, k, expected_q, expected_k


def assert_matches(actual, expected):
    assert actual.dtype == expected.dtype
    torch.testing.assert_close(actual, expected, **TOLERANCES[actual.dtype])


def is_close(actual, expected):
    return torch.allclose(actual.float(), expected.float(), **TOLERANCES[actual.dtype])


SHAPES = [(4, 2, 16), (16, 8, 32), (4, 2, 128), (12, 3, 32)]  # the last pads both head counts (16 and 4)
DTYPES = [torch.float32, torch.bfloat16, torch.float16]


@pytest.mark.parametrize("with_norm", [True, False], ids=["norm_rope", "rope_only"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("num_heads,num_kv_heads,head_dim", SHAPES)
def test_matches_reference_ops(num_heads, num_kv_heads, head_dim, dtype, with_norm):
    q, k, expected_q, expected_k = run_kernel(37, num_heads, num_kv_heads, head_dim, dtype, with_norm)
    assert_matches(q, expected_q)
    assert_matches(k, expected_k)
    if dtype != torch.float32:
        # Both round the same float32 values to nearest even: nearly every element is bit-identical.
        exact = torch.cat([(q == expected_q).flatten(), (k == expected_k).flatten()]).float().mean()
        assert exact > 0.97, f"only {exact:.1%} of elements match the reference bit for bit"


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("with_norm", [True, False], ids=["norm_rope", "rope_only"])
def test_tolerance_catches_a_wrong_rotation(with_norm, dtype):
    """The same comparison fails when the kernel is handed sin for cos (and cos for sin)."""
    q, k, expected_q, expected_k = run_kernel(37, 4, 2, 32, dtype, with_norm, swap_cos_sin=True)
    assert not is_close(q, expected_q)
    assert not is_close(k, expected_k)


def test_tolerance_catches_swapped_norm_weights():
    qkv, q, k, positions, (q_weight, k_weight) = make_case(21, 4, 2, 32, torch.bfloat16, with_norm=True, seed=1)
    cos, sin = rope_tables(32)
    expected_q, expected_k = reference(positions, q, k, q_weight, k_weight, cos, sin)
    qk_norm_rope_triton(positions, q, k, k_weight, q_weight, EPS, cos, sin)
    assert not is_close(q, expected_q)
    assert not is_close(k, expected_k)


def test_position_zero_is_identity_without_norm():
    qkv, q, k, _, _ = make_case(5, 4, 2, 16, torch.bfloat16, with_norm=False, seed=2)
    before = qkv.clone()
    cos, sin = rope_tables(16)
    qk_norm_rope_triton(torch.zeros(5, dtype=torch.int64), q, k, None, None, EPS, cos, sin)
    assert torch.equal(qkv, before)


def test_contiguous_inputs_and_int32_positions():
    gen = torch.Generator().manual_seed(3)
    q = torch.randn(9, 4, 32, generator=gen)
    k = torch.randn(9, 2, 32, generator=gen)
    positions = torch.randint(0, MAX_POSITIONS, (9,), generator=gen)
    q_weight, k_weight = torch.rand(32, generator=gen) + 0.5, torch.rand(32, generator=gen) + 0.5
    cos, sin = rope_tables(32, theta=10000.0)
    expected_q, expected_k = reference(positions, q, k, q_weight, k_weight, cos, sin)
    qk_norm_rope_triton(positions.to(torch.int32), q, k, q_weight, k_weight, EPS, cos, sin)
    assert_matches(q, expected_q)
    assert_matches(k, expected_k)


def test_no_tokens_is_a_no_op():
    q, k = torch.empty(0, 4, 16), torch.empty(0, 2, 16)
    cos, sin = rope_tables(16)
    assert qk_norm_rope_triton(torch.empty(0, dtype=torch.int64), q, k, None, None, EPS, cos, sin) == (q, k)


def test_rejects_bad_arguments():
    cos, sin = rope_tables(16)
    positions = torch.zeros(3, dtype=torch.int64)
    q, k = torch.randn(3, 4, 16), torch.randn(3, 2, 16)
    with pytest.raises(ValueError, match="power of two"):
        qk_norm_rope_triton(positions, torch.randn(3, 4, 24), torch.randn(3, 2, 24), None, None, EPS, cos, sin)
    with pytest.raises(ValueError, match="both"):
        qk_norm_rope_triton(positions, q, k, torch.ones(16), None, EPS, cos, sin)
    with pytest.raises(ValueError, match="cos_cache"):
        qk_norm_rope_triton(positions, q, k, None, None, EPS, cos.double(), sin)
    with pytest.raises(ValueError, match="dtype"):
        qk_norm_rope_triton(positions, q, k.half(), None, None, EPS, cos, sin)


@pytest.mark.parametrize("with_norm", [True, False], ids=["norm_rope", "rope_only"])
def test_fused_kv_store_writes_what_rope_then_store_writes(with_norm):
    """With `kv`, the cache holds the rotated k and the untouched v at each token's slot (slot -1 skipped),
    exactly as the rope kernel followed by the Triton KV store leaves it."""
    kv_base = importlib.import_module("allmos.kv_store.base")
    store_kv_triton = importlib.import_module("allmos.kv_store.kernels.store").store_kv_triton
    num_tokens, num_heads, num_kv_heads, head_dim, block_size = 6, 4, 2, 16, 4
    qkv, q, k, positions, (q_weight, k_weight) = make_case(
        num_tokens, num_heads, num_kv_heads, head_dim, torch.float32, with_norm
    )
    v = qkv[:, (num_heads + num_kv_heads) * head_dim :].view(num_tokens, num_kv_heads, head_dim)
    slots = torch.tensor([5, 0, -1, 11, 3, 8])
    cos, sin = rope_tables(head_dim)
    caches = [torch.full((3, block_size, num_kv_heads, head_dim), -7.0) for _ in range(4)]
    separate = qkv.clone()
    sq, sk = (
        separate[:, : num_heads * head_dim],
        separate[:, num_heads * head_dim : (num_heads + num_kv_heads) * head_dim],
    )
    sq, sk = sq.view(num_tokens, num_heads, head_dim), sk.view(num_tokens, num_kv_heads, head_dim)
    qk_norm_rope_triton(positions, sq, sk, q_weight, k_weight, EPS, cos, sin)
    sv = separate[:, (num_heads + num_kv_heads) * head_dim :].view(num_tokens, num_kv_heads, head_dim)
    store_kv_triton(sk, sv, caches[0], caches[1], slots)
    target = kv_base.KVTarget(v, caches[2], caches[3], slots)
    qk_norm_rope_triton(positions, q, k, q_weight, k_weight, EPS, cos, sin, target)
    assert torch.equal(qkv, separate), "q/k in place as without the store, v untouched"
    assert torch.equal(caches[2], caches[0]) and torch.equal(caches[3], caches[1])
    assert (caches[2].view(-1, num_kv_heads, head_dim)[[1, 2, 4, 6, 7, 9, 10]] == -7.0).all()  # unused slots
