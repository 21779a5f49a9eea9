"""Cases of the qkv projection with the rope epilogue (allmos.linear.kernels.gemv_rope), shared by its
interpreter tests and its GPU tests: inputs, the fused kernel, the separate kernels it replaces and the
torch path. Imports triton: import it after the interpreter is chosen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import torch
import torch.nn.functional as F

from allmos.kv_store.base import KVPages, KVScales, KVTarget
from allmos.layers import ops
from allmos.layers.norm import RMSNorm
from allmos.layers.rotary import RotaryEmbedding
from allmos.linear.kernels.gemv import add_rms_norm_linear
from allmos.linear.kernels.gemv_rope import add_rms_norm_qkv_rope, rope_counters
from allmos.rope.base import QKVRope
from allmos.rope.kernels.qk_rope import qk_norm_rope_triton

EPS = 1e-6
MAX_POSITIONS = 4096
BLOCKS, BLOCK_SIZE = 3, 4


@dataclass(frozen=True)
class Case:
    heads: int = 4
    kv_heads: int = 2
    head_dim: int = 32
    hidden: int = 64
    dtype: torch.dtype = torch.float32
    norm: bool = True  # q/k norms (Qwen3)
    bias: bool = False  # qkv bias (Qwen2)
    residual: bool = True  # False: the first layer
    store: str = "auto"  # none (the KV store writes K/V), auto (the model's dtype), fp8, fp8_fixed (scale 2.0)
    slot: int = 9  # the token's slot; -1: CUDA-graph padding (nothing stored)
    position: int = 1234
    extra: dict = field(default_factory=dict)  # launch options (block_n, num_warps)

    @property
    def id(self) -> str:
        flags = [self.store, str(self.dtype).removeprefix("torch."), f"h{self.heads}-{self.kv_heads}x{self.head_dim}"]
        flags += [name for name in ("bias",) if getattr(self, name)]
        flags += [] if self.norm else ["no_norm"]
        flags += [] if self.residual else ["no_residual"]
        flags += [] if self.slot >= 0 else ["padding"]
        return "-".join(flags + [f"{k}{v}" for k, v in self.extra.items()])


CASES = [
    Case(),
    Case(dtype=torch.bfloat16),
    Case(norm=False, bias=True, residual=False),
    Case(bias=True),  # each of the three alone, so that a failure of the one above says which
    Case(norm=False),
    Case(residual=False),
    Case(store="none"),
    Case(store="fp8", dtype=torch.bfloat16),
    Case(store="fp8_fixed"),
    Case(slot=-1),
    Case(heads=3, kv_heads=1, head_dim=16, hidden=48, extra={"block_n": 4, "num_warps": 2}),
]
CASE_IDS = [case.id for case in CASES]


class Inputs(NamedTuple):
    projection: tuple  # x, residual, norm_weight, eps, weight, bias
    rope: QKVRope
    counters: torch.Tensor


class Outputs(NamedTuple):
    qkv: torch.Tensor
    residual: torch.Tensor
    pages: tuple  # k_cache, v_cache, then the scales where fp8


def _norm(case: Case, gen: torch.Generator, device) -> RMSNorm:
    norm = RMSNorm(case.head_dim, EPS, ops)
    norm.weight.data = (1 + 0.5 * torch.randn(case.head_dim, generator=gen)).to(case.dtype).to(device)
    return norm


def _pages(case: Case, device) -> KVPages | None:
    if case.store == "none":
        return None
    shape = (BLOCKS, BLOCK_SIZE, case.kv_heads, case.head_dim)
    if case.store == "auto":
        return KVPages(*(torch.full(shape, -7.0, dtype=case.dtype, device=device) for _ in range(2)),
                       torch.tensor([case.slot], device=device))  # fmt: skip
    caches = [torch.zeros(shape, dtype=torch.float8_e4m3fn, device=device) for _ in range(2)]
    scale_shape = (BLOCKS, case.kv_heads, BLOCK_SIZE)
    fixed = 2.0 if case.store == "fp8_fixed" else None
    scales = KVScales(*(torch.full(scale_shape, -1.0, device=device) for _ in range(2)), fixed)
    return KVPages(*caches, torch.tensor([case.slot], device=device), scales)


def make_inputs(case: Case, device) -> Inputs:
    if case.slot >= BLOCKS * BLOCK_SIZE:
        raise ValueError(f"slot {case.slot} is outside the test's {BLOCKS * BLOCK_SIZE}-slot cache")
    gen = torch.Generator().manual_seed(0)
    n = (case.heads + 2 * case.kv_heads) * case.head_dim
    k = case.hidden

    def randn(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=gen)).to(case.dtype).to(device)

    x, residual = randn(1, k), randn(1, k) if case.residual else None
    norm_weight = (1 + 0.5 * torch.randn(k, generator=gen)).to(case.dtype).to(device)
    weight, bias = randn(n, k, scale=3 * k**-0.5), randn(n) if case.bias else None
    rotary = RotaryEmbedding(case.head_dim, MAX_POSITIONS, 1e6, None, ops).to(device)
    q_norm, k_norm = (_norm(case, gen, device), _norm(case, gen, device)) if case.norm else (None, None)
    positions = torch.tensor([case.position], device=device)
    rope = QKVRope(positions, q_norm, k_norm, rotary, case.heads, case.kv_heads, _pages(case, device))
    return Inputs((x, residual, norm_weight, EPS, weight, bias), rope, new_counters(case, device))


def new_counters(case: Case, device) -> torch.Tensor:
    return rope_counters(case.heads + 2 * case.kv_heads, device)


def _outputs(qkv, residual, kv: KVPages | None) -> Outputs:
    if kv is None:
        return Outputs(qkv, residual, ())
    scales = () if kv.scales is None else (kv.scales.k, kv.scales.v)
    return Outputs(qkv, residual, (kv.k_cache, kv.v_cache, *scales))


def run_fused(case: Case, device, counters=None) -> Outputs:
    inputs = make_inputs(case, device)
    counters = inputs.counters if counters is None else counters
    qkv, residual = add_rms_norm_qkv_rope(*inputs.projection, inputs.rope, counters, **case.extra)
    return _outputs(qkv, residual, inputs.rope.kv)


def _split(qkv: torch.Tensor, case: Case):
    heads = qkv.view(1, -1, case.head_dim)
    q, k, v = heads.split([case.heads, case.kv_heads, case.kv_heads], dim=1)
    return q, k, v


def run_projection_only(case: Case, device) -> Outputs:
    """The projection and its bias alone: what a kernel that skipped the epilogue would leave."""
    inputs = make_inputs(case, device)
    x, residual, norm_weight, eps, weight, bias = inputs.projection
    launch = {k: v for k, v in case.extra.items() if k != "pdl"}
    qkv, new_residual = add_rms_norm_linear(x, residual, norm_weight, eps, weight, pdl=False, **launch)
    qkv = qkv if bias is None else qkv + bias
    return _outputs(qkv, new_residual, inputs.rope.kv)


def run_separate(case: Case, device) -> Outputs:
    """The kernels the epilogue replaces: the projection, its bias, then the rope kernel storing K/V."""
    inputs = make_inputs(case, device)
    out = run_projection_only(case, device)
    rope, kv = inputs.rope, inputs.rope.kv
    q, k, v = _split(out.qkv, case)
    target = None if kv is None else KVTarget(v, kv.k_cache, kv.v_cache, kv.slot_mapping, kv.scales)
    q_w = None if rope.q_norm is None else rope.q_norm.weight
    k_w = None if rope.k_norm is None else rope.k_norm.weight
    qk_norm_rope_triton(rope.positions, q, k, q_w, k_w, EPS, rope.rotary.cos, rope.rotary.sin, target)
    return _outputs(out.qkv, out.residual, kv)


def run_both(case: Case, device) -> tuple[Outputs, Outputs]:
    return run_fused(case, device), run_separate(case, device)


def run_torch(case: Case, device) -> Outputs:
    """The torch path: ops.add_rms_norm, F.linear (+ bias), ops.rms_norm per head, ops.rope_qk; K/V
    written into the auto-dtype pages (fp8 cases are left to the comparison with the separate kernels)."""
    inputs = make_inputs(case, device)
    x, residual, norm_weight, eps, weight, bias = inputs.projection
    normed, new_residual = (ops.rms_norm(x, norm_weight, eps), x) if residual is None else ops.add_rms_norm(
        x, residual, norm_weight, eps)  # fmt: skip
    qkv = F.linear(normed, weight, bias)
    q, k, v = _split(qkv, case)
    rope = inputs.rope
    if rope.q_norm is not None:
        q, k = ops.rms_norm(q, rope.q_norm.weight, eps), ops.rms_norm(k, rope.k_norm.weight, eps)
    q, k = ops.rope_qk(rope.positions, q, k, rope.rotary.cos, rope.rotary.sin)
    qkv = torch.cat([q, k, v], dim=1).view(1, -1)
    kv = rope.kv
    if kv is not None and case.store == "auto" and case.slot >= 0:
        block, offset = divmod(case.slot, BLOCK_SIZE)
        kv.k_cache[block, offset], kv.v_cache[block, offset] = k[0], v[0]
    return _outputs(qkv, new_residual, kv)


def assert_same(actual: Outputs, expected: Outputs, case: Case | None = None) -> None:
    """Bit for bit: the output row, the residual and every page and scale. With `case`, a differing row says
    which heads differ (q, k or v) and by how much."""
    if not torch.equal(actual.qkv, expected.qkv):
        detail = "" if case is None else row_difference(actual, expected, case)
        raise AssertionError("the output row differs" + detail)
    assert torch.equal(actual.residual, expected.residual), "the residual differs"
    assert len(actual.pages) == len(expected.pages)
    for name, a, e in zip(("k_cache", "v_cache", "k_scales", "v_scales"), actual.pages, expected.pages):
        assert torch.equal(a.view(torch.uint8) if a.dtype == torch.float8_e4m3fn else a,
                           e.view(torch.uint8) if e.dtype == torch.float8_e4m3fn else e), f"{name} differs"  # fmt: skip


def row_difference(actual: Outputs, expected: Outputs, case: Case) -> str:
    parts = zip("qkv", _split(actual.qkv, case), _split(expected.qkv, case))
    texts = []
    for name, a, e in parts:
        largest = (a.double() - e.double()).abs().max().item()
        texts.append(f"; {name}: {(a != e).sum().item()} of {a.numel()} differ, max {largest:.3g}")
    return "".join(texts)


def assert_agrees(actual: Outputs, expected: Outputs, case: Case) -> None:
    """What the compiled kernels can promise each other: the V heads, the residual, the V pages and their
    scales bit for bit (the same instructions in both); the rotated q/k heads and the K pages to a few units
    in the last place, most of them bit for bit. The two compiled kernels contract the rotation's products
    into FMAs differently (for the second half, x2 cos rounded and x1 sin fused in the rope kernel, the other
    way round in the epilogue: their sm_90 PTX, 2026-12-06), and they tile a head differently, so with q/k
    norms they may sum its squares in another order: a last bit may differ."""
    q, k, v = _split(actual.qkv, case)
    eq, ek, ev = _split(expected.qkv, case)
    assert torch.equal(v, ev), "the V heads differ" + row_difference(actual, expected, case)
    assert torch.equal(actual.residual, expected.residual), "the residual differs"
    for name, a, e in (("q", q, eq), ("k", k, ek)):
        _assert_last_bits(name, a, e)
    if not actual.pages:
        return
    k_cache, v_cache, *scales = actual.pages
    ek_cache, ev_cache, *escales = expected.pages
    assert torch.equal(_bits(v_cache), _bits(ev_cache)), "the V pages differ"
    if not scales:
        _assert_last_bits("K pages", k_cache, ek_cache)
        return
    assert torch.equal(scales[1], escales[1]), "the V scales differ"
    k_values, ek_values = _dequantized(k_cache, scales[0]), _dequantized(ek_cache, escales[0])
    torch.testing.assert_close(k_values, ek_values, rtol=2**-3, atol=2**-9 * ek_values.abs().max().item())


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.view(torch.uint8) if x.dtype == torch.float8_e4m3fn else x


def _dequantized(pages: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """[blocks, block_size, H, D] values times their [blocks, H, block_size] scales."""
    return pages.float() * scales.transpose(1, 2)[..., None]


def _assert_last_bits(name: str, actual: torch.Tensor, expected: torch.Tensor) -> None:
    eps = torch.finfo(actual.dtype).eps
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=4 * eps, atol=4 * eps * scale, msg=lambda m: f"{name}: {m}")
    exact = (actual == expected).float().mean().item()
    assert exact >= 0.75, f"{name}: only {exact:.1%} of the elements are bit for bit the same"


def assert_close_to_torch(actual: Outputs, expected: Outputs) -> None:
    tolerance = {"atol": 1e-5, "rtol": 1e-5} if actual.qkv.dtype == torch.float32 else {"atol": 3e-2, "rtol": 2e-2}
    torch.testing.assert_close(actual.qkv, expected.qkv, **tolerance)
    torch.testing.assert_close(actual.residual, expected.residual, **tolerance)
    for a, e in zip(actual.pages, expected.pages):
        torch.testing.assert_close(a, e, **tolerance)
