"""GPU tests of the fused qk-norm + RoPE Triton kernel at Qwen3-0.6B shapes (16 q heads, 8 kv heads,
head_dim 128), against the reference ops in allmos/layers/ops.py.

Skipped without CUDA, and when TRITON_INTERPRET=1 is set (the kernel would run in the interpreter; the CPU
tests in qk_rope_interpreter_kernels.py cover that).
"""

import importlib

import pytest
import torch
from triton_guards import require_compiled_triton

pytestmark = pytest.mark.gpu

require_compiled_triton()

qk_norm_rope_triton = importlib.import_module("allmos.rope.kernels.qk_rope").qk_norm_rope_triton
_ops = importlib.import_module("allmos.layers.ops")
RotaryEmbedding = importlib.import_module("allmos.layers.rotary").RotaryEmbedding

NUM_HEADS, NUM_KV_HEADS, HEAD_DIM = 16, 8, 128
MAX_POSITIONS, THETA, EPS = 40960, 1e6, 1e-6
DEVICE = "cuda"
TOLERANCES = {torch.bfloat16: {"atol": 2e-2, "rtol": 1e-2}, torch.float32: {"atol": 1e-5, "rtol": 1e-5}}


def check_case(num_tokens, dtype, with_norm, seed=0):
    gen = torch.Generator(device=DEVICE).manual_seed(seed)
    q_size, kv_size = NUM_HEADS * HEAD_DIM, NUM_KV_HEADS * HEAD_DIM
    qkv = (2 * torch.randn(num_tokens, q_size + 2 * kv_size, generator=gen, device=DEVICE)).to(dtype)
    q = qkv[:, :q_size].view(num_tokens, NUM_HEADS, HEAD_DIM)
    k = qkv[:, q_size : q_size + kv_size].view(num_tokens, NUM_KV_HEADS, HEAD_DIM)
    positions = torch.randint(0, 4096, (num_tokens,), generator=gen, device=DEVICE)
    rotary = RotaryEmbedding(HEAD_DIM, MAX_POSITIONS, THETA, None, ops=None).to(DEVICE)
    q_weight = k_weight = None
    expected_q, expected_k = q, k
    if with_norm:
        q_weight, k_weight = ((1 + 0.5 * torch.randn(HEAD_DIM, generator=gen, device=DEVICE)).to(dtype) for _ in "qk")
        expected_q, expected_k = _ops.rms_norm(q, q_weight, EPS), _ops.rms_norm(k, k_weight, EPS)
    expected_q, expected_k = _ops.rope_qk(positions, expected_q, expected_k, rotary.cos, rotary.sin)
    v_before = qkv[:, q_size + kv_size :].clone()

    out_q, out_k = qk_norm_rope_triton(positions, q, k, q_weight, k_weight, EPS, rotary.cos, rotary.sin)
    assert out_q is q and out_k is k
    torch.testing.assert_close(q, expected_q, **TOLERANCES[dtype])
    torch.testing.assert_close(k, expected_k, **TOLERANCES[dtype])
    assert torch.equal(qkv[:, q_size + kv_size :], v_before)

    # The same tolerance rejects a kernel that rotates with sin and cos swapped.
    qkv.copy_(torch.randn(qkv.shape, generator=gen, device=DEVICE).to(dtype))
    rotated = _ops.rope_qk(positions, q, k, rotary.cos, rotary.sin)
    qk_norm_rope_triton(positions, q, k, None, None, EPS, rotary.sin, rotary.cos)
    assert not torch.allclose(q.float(), rotated[0].float(), **TOLERANCES[dtype])


@pytest.mark.parametrize("with_norm", [True, False], ids=["norm_rope", "rope_only"])
@pytest.mark.parametrize("num_tokens", [1, 2, 7, 64, 129, 300])
def test_bf16_qwen3_shapes(num_tokens, with_norm):
    check_case(num_tokens, torch.bfloat16, with_norm, seed=num_tokens)


@pytest.mark.parametrize("with_norm", [True, False], ids=["norm_rope", "rope_only"])
def test_float32(with_norm):
    check_case(300, torch.float32, with_norm, seed=1)


def test_pdl_launch_computes_what_the_plain_launch_does():
    """With programmatic dependent launch the kernel reads q and k only after the kernel that wrote them
    (here a torch op, then the previous rope call) has finished: bit for bit the plain launch's result."""
    if torch.cuda.get_device_capability()[0] < 9:
        pytest.skip("programmatic dependent launch needs sm_90+")
    gen = torch.Generator(device=DEVICE).manual_seed(3)
    num_tokens, q_size, kv_size = 7, NUM_HEADS * HEAD_DIM, NUM_KV_HEADS * HEAD_DIM
    source = torch.randn(num_tokens, q_size + 2 * kv_size, generator=gen, device=DEVICE).to(torch.bfloat16)
    positions = torch.randint(0, 4096, (num_tokens,), generator=gen, device=DEVICE)
    rotary = RotaryEmbedding(HEAD_DIM, MAX_POSITIONS, THETA, None, ops=None).to(DEVICE)
    weights = [(1 + 0.5 * torch.randn(HEAD_DIM, generator=gen, device=DEVICE)).to(torch.bfloat16) for _ in "qk"]

    def rotate_twice(pdl):
        qkv = source * 3  # written by the kernel just before
        q = qkv[:, :q_size].view(num_tokens, NUM_HEADS, HEAD_DIM)
        k = qkv[:, q_size : q_size + kv_size].view(num_tokens, NUM_KV_HEADS, HEAD_DIM)
        for _ in range(2):
            qk_norm_rope_triton(positions, q, k, *weights, EPS, rotary.cos, rotary.sin, pdl=pdl)
        return qkv

    assert torch.equal(rotate_twice(pdl=True), rotate_twice(pdl=False))
