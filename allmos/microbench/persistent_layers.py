"""Every layer's batch-1 projections in one persistent Triton kernel: the probe of a fused per-layer decode
kernel (persistent_chain times it; not an engine path).

One program per SM runs all layers. A layer is four phases, each a GEMV whose output rows are split evenly
over the programs, with a grid-wide barrier after each (the next phase reads every row of it); with attention,
a fifth phase between qkv and o (allmos.microbench.persistent_attention) gives o its input:

    qkv  = W_qkv rms_norm(h, norm1)                      (rows of qkv)
    h   += W_o qkv[:q_width]                              (without attention, q's columns stand in for its output)
    act  = silu(W_gate x) * W_up x,  x = rms_norm(h, norm2)
    h   += W_down act

What a kernel per GEMV cannot do and this can: start the next phase's weight stream before the barrier ends the
current phase (weights do not depend on the data). `prefetch` picks how:
- "registers": a program loads its weight slice of the next phase into registers before it waits at the barrier;
- "l2": at the start of each phase a program asks the L2 for its slice of the next phase's weights (and, in the
  qkv phase, for the layer's K/V rows that attention will read) with bulk prefetches (inline PTX, so a compiled
  kernel only), and loads it from there after the barrier: a software pipeline through the L2, one phase deep;
- "none": loads after the barrier, to measure what either overlap buys.
SYNC=False drops the barriers, which leaves the results wrong (programs race ahead of the
data they read): a timing-only bound on what a free barrier would give. Every activation is read with .cg (past
the L1, which other SMs' writes do not invalidate). Under the Triton interpreter programs run one after another,
so a barrier among several deadlocks: CPU tests launch one program, which then does every row of every phase.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from allmos.microbench.persistent_attention import (
    attention_phase,
    pick_splits,
    prefetch_attention_rows,
    reference_attention,
)
from allmos.triton_shared.l2_prefetch import prefetch_rows
from allmos.triton_shared.support import interpreter_on

PHASES_PER_LAYER = 4
PREFETCH_MODES = ("registers", "none", "l2")


@triton.jit
def _grid_sync(counter_ptr, target):
    """Wait until `target` arrivals: every program's earlier stores are visible to every program after it."""
    tl.debug_barrier()
    tl.atomic_add(counter_ptr, 1, sem="release", scope="gpu")
    seen = tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu")
    while seen < target:
        seen = tl.atomic_add(counter_ptr, 0, sem="acquire", scope="gpu")
    tl.debug_barrier()


@triton.jit
def _weight_tile(w_ptr, first_row, rows, n_rows, k_cols, BN: tl.constexpr, BK: tl.constexpr):
    """This program's rows [first_row, first_row + rows) of a row-major [n_rows, k_cols] weight, padded to BN x BK."""
    r = tl.arange(0, BN)
    n = first_row + r
    k = tl.arange(0, BK)
    mask = ((r < rows) & (n < n_rows))[:, None] & (k < k_cols)[None, :]
    return tl.load(w_ptr + n[:, None] * k_cols + k[None, :], mask=mask, other=0.0)


@triton.jit
def _activation(x_ptr, n, BK: tl.constexpr):
    k = tl.arange(0, BK)
    return tl.load(x_ptr + k, mask=k < n, other=0.0, cache_modifier=".cg").to(tl.float32)


@triton.jit
def _rms_normed(h_ptr, w_ptr, eps, hidden, BH: tl.constexpr):
    """rms_norm(h) * w, rounded to h's dtype (as the engine hands it to the projection), in float32."""
    h = _activation(h_ptr, hidden, BH)
    inv_rms = tl.rsqrt(tl.sum(h * h, axis=0) / hidden + eps)
    w = tl.load(w_ptr + tl.arange(0, BH), mask=tl.arange(0, BH) < hidden, other=0.0).to(tl.float32)
    return (h * inv_rms * w).to(h_ptr.dtype.element_ty).to(tl.float32)


@triton.jit
def _matvec(tile, x):
    return tl.sum(tile.to(tl.float32) * x[None, :], axis=1)


@triton.jit
def _add_to_stream(h_ptr, first_row, rows, hidden, y, BN: tl.constexpr):
    """h[rows] += y, with y rounded to h's dtype first (the projection's output), the sum rounded once."""
    r = tl.arange(0, BN)
    n = first_row + r
    mask = (r < rows) & (n < hidden)
    dtype = h_ptr.dtype.element_ty
    h = tl.load(h_ptr + n, mask=mask, other=0.0, cache_modifier=".cg").to(tl.float32)
    tl.store(h_ptr + n, (h + y.to(dtype).to(tl.float32)).to(dtype), mask=mask)


@triton.jit
def _end_phase(counter_ptr, arrivals, SYNC: tl.constexpr):
    """Arrive at the barrier after a phase (every program once) and wait for the rest; returns the new count."""
    arrivals += tl.num_programs(0)
    if SYNC:
        _grid_sync(counter_ptr, arrivals)
    return arrivals


@triton.jit
def persistent_layers_kernel(
    h_ptr, qkv_ptr, act_ptr, counter_ptr,
    w_qkv_ptr, w_o_ptr, w_gate_ptr, w_up_ptr, w_down_ptr, norm1_ptr, norm2_ptr,
    layers, eps, hidden, qkv_width, q_width, inter,
    rows_qkv, rows_o, rows_gu, rows_down,
    attn_ptr, k_cache_ptr, v_cache_ptr, block_table_ptr, q_norm_ptr, k_norm_ptr, cos_ptr, sin_ptr,
    part_ptr, stat_ptr, head_count_ptr, context_ptr, scale, splits, cache_layer_stride,
    BH: tl.constexpr, BQ: tl.constexpr, BI: tl.constexpr,
    BN_QKV: tl.constexpr, BN_O: tl.constexpr, BN_GU: tl.constexpr, BN_DOWN: tl.constexpr,
    PREFETCH: tl.constexpr, SYNC: tl.constexpr, ATTENTION: tl.constexpr,
    NUM_HEADS: tl.constexpr, NUM_KV_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_SIZE: tl.constexpr,
    BT: tl.constexpr, SP: tl.constexpr, THREADS: tl.constexpr,
):  # fmt: skip
    """With ATTENTION, o reads the attention phase's output (attn_ptr) instead of qkv's first q_width values.
    THREADS: the program's thread count (32 x num_warps), which the l2 mode's prefetches are cut into."""
    pid = tl.program_id(0)
    dtype = h_ptr.dtype.element_ty
    r0, r1, r2, r3 = pid * rows_qkv, pid * rows_o, pid * rows_gu, pid * rows_down
    o_in_ptr = attn_ptr if ATTENTION else qkv_ptr
    arrivals = pid * 0
    w_qkv = _weight_tile(w_qkv_ptr, r0, rows_qkv, qkv_width, hidden, BN_QKV, BH)
    for layer in range(layers):
        w_o_layer = w_o_ptr + layer * hidden * q_width
        w_gate_layer = w_gate_ptr + layer * inter * hidden
        w_up_layer = w_up_ptr + layer * inter * hidden
        w_down_layer = w_down_ptr + layer * hidden * inter
        cache = layer * cache_layer_stride  # int32: the host keeps the caches below 2**31 elements
        if PREFETCH == "l2":
            prefetch_rows(w_o_layer, r1, rows_o, hidden, q_width, THREADS)
            if ATTENTION:
                prefetch_attention_rows(
                    k_cache_ptr + cache, v_cache_ptr + cache, block_table_ptr, context_ptr,
                    NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE, THREADS,
                )  # fmt: skip
        # qkv = W_qkv rms_norm(h)
        x = _rms_normed(h_ptr, norm1_ptr + layer * hidden, eps, hidden, BH)
        n = r0 + tl.arange(0, BN_QKV)
        y = _matvec(w_qkv, x)
        tl.store(qkv_ptr + n, y.to(dtype), mask=(tl.arange(0, BN_QKV) < rows_qkv) & (n < qkv_width))
        if ATTENTION:
            arrivals = _end_phase(counter_ptr, arrivals, SYNC)
            if PREFETCH == "l2":
                prefetch_rows(w_gate_layer, r2, rows_gu, inter, hidden, THREADS)
                prefetch_rows(w_up_layer, r2, rows_gu, inter, hidden, THREADS)
            attention_phase(
                qkv_ptr, attn_ptr, k_cache_ptr + cache, v_cache_ptr + cache, block_table_ptr,
                q_norm_ptr + layer * HEAD_DIM, k_norm_ptr + layer * HEAD_DIM, cos_ptr, sin_ptr,
                part_ptr, stat_ptr, head_count_ptr, context_ptr, eps, scale, splits,
                NUM_HEADS, NUM_KV_HEADS, HEAD_DIM, BLOCK_SIZE, BT, SP,
            )  # fmt: skip
        if PREFETCH == "registers":
            w_o = _weight_tile(w_o_layer, r1, rows_o, hidden, q_width, BN_O, BQ)
        arrivals = _end_phase(counter_ptr, arrivals, SYNC)
        if PREFETCH == "l2" and not ATTENTION:
            prefetch_rows(w_gate_layer, r2, rows_gu, inter, hidden, THREADS)
            prefetch_rows(w_up_layer, r2, rows_gu, inter, hidden, THREADS)
        if PREFETCH != "registers":
            w_o = _weight_tile(w_o_layer, r1, rows_o, hidden, q_width, BN_O, BQ)
        # h += W_o attention (or q)
        _add_to_stream(h_ptr, r1, rows_o, hidden, _matvec(w_o, _activation(o_in_ptr, q_width, BQ)), BN_O)
        if PREFETCH == "registers":
            w_gate = _weight_tile(w_gate_layer, r2, rows_gu, inter, hidden, BN_GU, BH)
            w_up = _weight_tile(w_up_layer, r2, rows_gu, inter, hidden, BN_GU, BH)
        arrivals = _end_phase(counter_ptr, arrivals, SYNC)
        if PREFETCH == "l2":
            prefetch_rows(w_down_layer, r3, rows_down, hidden, inter, THREADS)
        if PREFETCH != "registers":
            w_gate = _weight_tile(w_gate_layer, r2, rows_gu, inter, hidden, BN_GU, BH)
            w_up = _weight_tile(w_up_layer, r2, rows_gu, inter, hidden, BN_GU, BH)
        # act = silu(W_gate x) * W_up x
        x = _rms_normed(h_ptr, norm2_ptr + layer * hidden, eps, hidden, BH)
        gate = _matvec(w_gate, x).to(dtype).to(tl.float32)
        up = _matvec(w_up, x).to(dtype).to(tl.float32)
        n = r2 + tl.arange(0, BN_GU)
        act = gate / (1.0 + tl.exp(-gate)) * up
        tl.store(act_ptr + n, act.to(dtype), mask=(tl.arange(0, BN_GU) < rows_gu) & (n < inter))
        if PREFETCH == "registers":
            w_down = _weight_tile(w_down_layer, r3, rows_down, hidden, inter, BN_DOWN, BI)
        arrivals = _end_phase(counter_ptr, arrivals, SYNC)
        # the next layer's qkv slice (masked past the last layer)
        next_qkv = w_qkv_ptr + (layer + 1) * qkv_width * hidden
        next_rows = rows_qkv * (layer + 1 < layers)
        if PREFETCH == "l2":
            prefetch_rows(next_qkv, r0, next_rows, qkv_width, hidden, THREADS)
        if PREFETCH != "registers":
            w_down = _weight_tile(w_down_layer, r3, rows_down, hidden, inter, BN_DOWN, BI)
        # h += W_down act
        _add_to_stream(h_ptr, r3, rows_down, hidden, _matvec(w_down, _activation(act_ptr, inter, BI)), BN_DOWN)
        if PREFETCH == "registers":
            w_qkv = _weight_tile(next_qkv, r0, next_rows, qkv_width, hidden, BN_QKV, BH)
        arrivals = _end_phase(counter_ptr, arrivals, SYNC)
        if PREFETCH != "registers":
            w_qkv = _weight_tile(next_qkv, r0, next_rows, qkv_width, hidden, BN_QKV, BH)


def stacked(weights: list[dict]) -> dict:
    """layer_chain's per-layer weights as [layers, ...] tensors, gate_up split into gate and up."""
    inter = weights[0]["gate_up"].shape[0] // 2
    names = ("qkv", "o", "down", "norm1", "norm2")
    out = {name: torch.stack([w[name] for w in weights]).contiguous() for name in names}
    out["gate"] = torch.stack([w["gate_up"][:inter] for w in weights]).contiguous()
    out["up"] = torch.stack([w["gate_up"][inter:] for w in weights]).contiguous()
    return out


def _check_bulk_prefetchable(w: dict, attention) -> None:
    """The l2 mode's bulk prefetches need 16-byte aligned starts and whole 16-byte rows (weight rows; with
    attention, a token's K/V row over every kv head)."""
    tensors = {name: t for name, t in w.items() if t.dim() == 3}
    if attention is not None:
        tensors |= {name: attention[name] for name in ("k_cache", "v_cache")}
    for name, t in tensors.items():
        row = t[0, 0] if name in w else t[0, 0, 0]
        if t.data_ptr() % 16 or (row.numel() * row.element_size()) % 16:
            raise ValueError(f"prefetch='l2' needs 16-byte aligned {name} rows; got {row.numel()} x {row.dtype}")


def _pow2(n: int) -> int:
    return triton.next_power_of_2(max(1, n))


class PersistentLayers:
    """Launches the kernel over `stacked` weights with `programs` programs (one an SM on a GPU; 1 under the
    interpreter). run(h) updates the residual stream h [hidden] in place through every layer. `attention` (a dict
    as persistent_chain's attention_inputs makes) adds the attention phase over its paged caches, which the run
    updates with the new token's K/V."""

    def __init__(
        self,
        w: dict,
        q_width: int,
        eps: float,
        programs: int,
        prefetch="registers",
        num_warps=8,
        sync=True,
        attention=None,
    ):
        if prefetch not in PREFETCH_MODES:
            raise ValueError(f"prefetch must be one of {', '.join(PREFETCH_MODES)}; got {prefetch!r}")
        if prefetch == "l2" and interpreter_on():
            raise ValueError("prefetch='l2' issues inline PTX: a compiled kernel on a GPU, not the interpreter")
        if prefetch == "l2":
            _check_bulk_prefetchable(w, attention)
        self.w, self.q_width, self.eps, self.programs = w, q_width, eps, programs
        self.prefetch, self.num_warps, self.sync, self.attention = prefetch, num_warps, sync, attention
        self.layers, self.qkv_width, self.hidden = w["qkv"].shape
        self.inter = w["gate"].shape[1]
        self.rows = {
            name: -(-n // programs)
            for name, n in (("qkv", self.qkv_width), ("o", self.hidden), ("gu", self.inter), ("down", self.hidden))
        }
        device, dtype = w["qkv"].device, w["qkv"].dtype
        self.qkv = torch.empty(self.qkv_width, dtype=dtype, device=device)
        self.act = torch.empty(self.inter, dtype=dtype, device=device)
        self.counter = torch.zeros(1, dtype=torch.int32, device=device)
        self.attention_args = self._attention_args(attention, device, dtype)

    def _attention_args(self, a, device, dtype) -> tuple[tuple, dict]:
        """The kernel's attention arguments and constexprs (placeholders without attention: never read)."""
        if a is None:
            placeholders = (self.qkv,) * 8 + (self.qkv, self.qkv, self.counter, self.counter, 1.0, 2, 2)
            return placeholders, {"NUM_HEADS": 1, "NUM_KV_HEADS": 1, "HEAD_DIM": 2, "BLOCK_SIZE": 1, "BT": 1, "SP": 1}
        heads, kv_heads, d = a["num_heads"], a["num_kv_heads"], a["head_dim"]
        if a["k_cache"].numel() >= 2**31:
            raise ValueError(f"the probe's caches index in int32: {a['k_cache'].numel()} elements is too many")
        splits = pick_splits(self.programs, kv_heads, a.get("splits"))
        split_len = -(-a["context"] // splits)  # sets the tile only: the kernel reads the length
        group = heads // kv_heads
        part = torch.empty(kv_heads * splits * group * d, dtype=torch.float32, device=device)
        stat = torch.empty(kv_heads * splits * group * 2, dtype=torch.float32, device=device)
        head_count = torch.zeros(kv_heads, dtype=torch.int32, device=device)
        self.attn_out = torch.empty(heads * d, dtype=dtype, device=device)
        args = (self.attn_out, a["k_cache"], a["v_cache"], a["block_table"], a["q_norm"], a["k_norm"])
        args += (a["cos"], a["sin"], part, stat, head_count, a["context_len"], d**-0.5, splits)
        args += (a["k_cache"][0].numel(),)
        constexprs = {"NUM_HEADS": heads, "NUM_KV_HEADS": kv_heads, "HEAD_DIM": d, "BLOCK_SIZE": a["block_size"]}
        return args, constexprs | {"BT": min(32, _pow2(split_len)), "SP": _pow2(splits)}

    def arrivals(self) -> int:
        """What the barrier counter reads after a run: every program once at every phase's end."""
        phases = PHASES_PER_LAYER + (self.attention is not None)
        return phases * self.layers * self.programs if self.sync else 0

    def launch_args(self, h: torch.Tensor) -> tuple[tuple, dict]:
        """The kernel's positional arguments for stream h, and its constexprs and launch options."""
        w, rows = self.w, self.rows
        args, constexprs = self.attention_args
        positional = (h, self.qkv, self.act, self.counter)
        positional += (w["qkv"], w["o"], w["gate"], w["up"], w["down"], w["norm1"], w["norm2"])
        positional += (self.layers, self.eps, self.hidden, self.qkv_width, self.q_width, self.inter)
        positional += (rows["qkv"], rows["o"], rows["gu"], rows["down"], *args)
        blocks = {"BH": self.hidden, "BQ": self.q_width, "BI": self.inter}
        blocks |= {"BN_QKV": rows["qkv"], "BN_O": rows["o"], "BN_GU": rows["gu"], "BN_DOWN": rows["down"]}
        options = {name: _pow2(n) for name, n in blocks.items()} | constexprs
        options |= {"PREFETCH": self.prefetch, "SYNC": self.sync, "ATTENTION": self.attention is not None}
        options |= {"THREADS": 32 * self.num_warps}
        return positional, options

    def run(self, h: torch.Tensor) -> torch.Tensor:
        positional, options = self.launch_args(h)
        self.counter.zero_()
        persistent_layers_kernel[(self.programs,)](*positional, **options, num_warps=self.num_warps)
        return h


def reference_layers(h: torch.Tensor, w: dict, q_width: int, eps: float, attention=None) -> torch.Tensor:
    """The kernel's math in torch, rounding where it rounds: h [hidden] after every layer (a new tensor). With
    `attention`, o reads reference_attention's output, which updates those caches as the kernel does."""
    dtype = h.dtype

    def normed(h, weight):
        hf = h.float()
        return (hf * torch.rsqrt(hf.pow(2).mean() + eps) * weight.float()).to(dtype).float()

    def matvec(weight, x):
        return (weight.float() @ x).to(dtype).float()

    for layer in range(w["qkv"].shape[0]):
        qkv = matvec(w["qkv"][layer], normed(h, w["norm1"][layer])).to(dtype)
        o_in = qkv[:q_width] if attention is None else reference_attention(qkv, layer, attention, eps)
        h = (h.float() + matvec(w["o"][layer], o_in.float())).to(dtype)
        x = normed(h, w["norm2"][layer])
        gate, up = matvec(w["gate"][layer], x), matvec(w["up"][layer], x)
        act = (torch.nn.functional.silu(gate) * up).to(dtype)
        h = (h.float() + matvec(w["down"][layer], act.float())).to(dtype)
    return h
