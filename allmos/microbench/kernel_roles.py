"""What each kernel of a decode step does, read from its name: the roles `step_timeline` sums a step's GPU time by,
beside the time the step's unavoidable bytes take at the copy bandwidth (`floors_us`).

A name is matched against the patterns below in order, so a fused kernel counts under its main work (the qkv GEMV
with the rope in its epilogue is a projection). Among projections, a GEMM launched about once per step while the
others run once per layer is the LM head; at one row the LM head runs the layers' own GEMV and stays among the
projections. Under programmatic dependent launch a kernel's profiled duration includes its wait for the one
before, so at small batches the roles can sum past the step's span.
"""

from __future__ import annotations

import collections

INPUTS = "copies, embedding, metadata"  # step inputs and outputs, the embedding lookup, the decode order's sort
ROLES = ("attention", "projections", "lm head", "norms, rope, SiLU, KV store", "sampling", INPUTS, "other")

_PATTERNS = (  # first match wins; names are lower-cased
    ("attention", ("_decode_split", "_decode_combine", "_prefill_kernel", "flash", "fmha", "attention")),
    (
        "projections",
        ("nvjet", "gemm", "gemv", "_linear_kernel", "_qkv_rope_kernel", "cublas", "cutlass", "xmma", "splitkreduce"),
    ),
    ("sampling", ("_chunk_best", "_row_best", "gumbel", "argmax", "topk", "multinomial", "exponential")),
    ("norms, rope, SiLU, KV store", ("triton_poi", "triton_per", "triton_red", "rope", "norm", "silu", "_store_kv")),
    (INPUTS, ("memcpy", "memset", "_load_static_inputs", "index", "gather", "arange", "copy", "fill", "sort")),
)


def role_of(name: str) -> str:
    lowered = name.lower()
    for role, patterns in _PATTERNS:
        if any(pattern in lowered for pattern in patterns):
            return role
    return "other"


def us_per_role(kernels: list[dict], num_layers: int) -> dict[str, float]:
    """Microseconds per step by role, from step_timeline's per-name rows (every name, not only the top ones)."""
    totals = collections.defaultdict(float)
    for kernel in kernels:
        role = role_of(kernel["name"])
        if role == "projections" and kernel["calls_per_step"] < num_layers / 2:
            role = "lm head"
        totals[role] += kernel["us_per_step"]
    return {role: totals[role] for role in ROLES if role in totals}


def floors_us(context_tokens: float, kv_bytes_per_token: int, weight_bytes: int, copy_bytes_per_s: float) -> dict:
    """The time a decode step's unavoidable reads take at the copy bandwidth (read + write bytes a second, as the
    record's roofline takes it): the K/V of the context_tokens its attention reads (kv_bytes_per_token over every
    layer, K and V, FP8 pages' scales included) and the weights (every parameter, as the record counts them)."""
    per_us = copy_bytes_per_s / 1e6
    return {"kv_read_us": context_tokens * kv_bytes_per_token / per_us, "weights_us": weight_bytes / per_us}
