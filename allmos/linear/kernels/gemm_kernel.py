"""The Triton kernel behind allmos.linear.kernels.gemm: one program per output tile and K slice,
the element-wise prologue applied to the input as it is loaded, split-K finished by the last slice."""

import triton
import triton.language as tl

from allmos.linear.kernels.gemv_kernel import round_to_dtype
from allmos.triton_shared.pdl import wait_for_previous_kernel

PLAIN = tl.constexpr(0)
ADD_RMS_NORM = tl.constexpr(1)
SILU_MUL = tl.constexpr(2)


@triton.jit
def _rows_chunk(ptr, offs_m, m_mask, stride_m, offs_k, k_mask):
    mask = m_mask[:, None] & k_mask[None, :]
    return tl.load(ptr + offs_m[:, None] * stride_m + offs_k[None, :], mask=mask, other=0.0)


@triton.jit
def _weight_tile(w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask):
    """The [BLOCK_K, BLOCK_N] chunk of W^T (W is [N, K] row-major), as the dot's second operand."""
    return tl.load(
        w_ptr + offs_n[None, :] * stride_wn + offs_k[:, None], mask=n_mask[None, :] & k_mask[:, None], other=0.0
    )


@triton.jit
def _raw_chunks(
    a_ptr,
    r_ptr,
    norm_w_ptr,
    offs_m,
    m_mask,
    stride_am,
    stride_rm,
    offs_k,
    k_mask,
    K,
    PROLOGUE: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
):
    """What the prologue combines at offs_k, as loaded: (gate, up, -) or (x, residual or 0, norm weight)."""
    first = _rows_chunk(a_ptr, offs_m, m_mask, stride_am, offs_k, k_mask)
    norm_w = tl.zeros((first.shape[1],), dtype=first.dtype)
    if PROLOGUE == SILU_MUL:
        second = _rows_chunk(a_ptr + K, offs_m, m_mask, stride_am, offs_k, k_mask)
    else:
        norm_w = tl.load(norm_w_ptr + offs_k, mask=k_mask, other=0.0)
        if HAS_RESIDUAL:
            second = _rows_chunk(r_ptr, offs_m, m_mask, stride_rm, offs_k, k_mask)
        else:
            second = tl.zeros_like(first)
    return first, second, norm_w


@triton.jit
def _silu_mul(gate, up, dtype: tl.constexpr):
    gate = gate.to(tl.float32)
    return (round_to_dtype(gate / (1.0 + tl.exp(-gate)), dtype) * up.to(tl.float32)).to(dtype)


@triton.jit
def _prologue_loop(
    a_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, offs_m, m_mask, offs_n, n_mask, K, k_start, k_per_split,
    stride_am, stride_rm, stride_new_rm, stride_wn,
    PROLOGUE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):  # fmt: skip
    """(acc, squares): the slice's product with the prologue applied, and for the norm the slice's sum of
    squares of x + residual per row. The prologue's inputs of the next chunk are loaded a chunk ahead (a
    load feeding element-wise ops is not pipelined by the compiler, and would otherwise stall each
    chunk); the norm's 1/rms is applied after the product, once the whole row's squares are known."""
    dtype: tl.constexpr = a_ptr.dtype.element_ty
    writes_residual = tl.program_id(0) == 0  # the programs of the first output columns store x + residual
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    squares = tl.zeros((BLOCK_M,), dtype=tl.float32)
    offs_k = k_start + tl.arange(0, BLOCK_K)
    first, second, norm_w = _raw_chunks(
        a_ptr, r_ptr, norm_w_ptr, offs_m, m_mask, stride_am, stride_rm, offs_k, offs_k < K, K, PROLOGUE, HAS_RESIDUAL
    )
    for k0 in range(0, k_per_split, BLOCK_K):
        offs_k = k_start + k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        next_k = offs_k + BLOCK_K
        next_first, next_second, next_norm_w = _raw_chunks(
            a_ptr,
            r_ptr,
            norm_w_ptr,
            offs_m,
            m_mask,
            stride_am,
            stride_rm,
            next_k,
            next_k < K,
            K,
            PROLOGUE,
            HAS_RESIDUAL,
        )
        w = _weight_tile(w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask)
        if PROLOGUE == SILU_MUL:
            a = _silu_mul(first, second, dtype)
        else:
            h = first.to(tl.float32)
            if HAS_RESIDUAL:
                h = round_to_dtype(h + second.to(tl.float32), dtype)
                new_r_ptrs = new_r_ptr + offs_m[:, None] * stride_new_rm + offs_k[None, :]
                tl.store(new_r_ptrs, h.to(dtype), mask=m_mask[:, None] & k_mask[None, :] & writes_residual)
            squares += tl.sum(h * h, axis=1)
            a = (norm_w.to(tl.float32)[None, :] * h).to(dtype)
        acc = _dot(a, w, acc)
        first, second, norm_w = next_first, next_second, next_norm_w
    return acc, squares


@triton.jit
def _dot(a, w, acc):
    if a.dtype == tl.float32:
        acc = tl.dot(a, w, acc, input_precision="ieee")  # not TF32: float32 models get float32 products
    else:
        acc = tl.dot(a, w, acc)
    return acc


@triton.jit
def _plain_loop(
    a_ptr,
    w_ptr,
    offs_m,
    m_mask,
    offs_n,
    n_mask,
    K,
    k_start,
    k_per_split,
    stride_am,
    stride_wn,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
):
    """The slice's product of rows loaded straight into the dot (pipelined by the compiler)."""
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for k0 in range(0, k_per_split, BLOCK_K):
        offs_k = k_start + k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        a = _rows_chunk(a_ptr, offs_m, m_mask, stride_am, offs_k, k_mask)
        w = _weight_tile(w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask)
        acc = _dot(a, w, acc)
    return acc


@triton.jit
def _scaled(acc, squares, K, eps, PROLOGUE: tl.constexpr):
    """The norm's 1/rms applied to the product of the whole of K."""
    if PROLOGUE == ADD_RMS_NORM:
        acc = acc * tl.rsqrt(squares / K + eps)[:, None]
    return acc


@triton.jit
def _finish_split(
    acc,
    squares,
    y_ptrs,
    y_mask,
    partial_ptr,
    counter_ptr,
    K,
    eps,
    split_k,
    PROLOGUE: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
):
    """Store this slice's partial tile (and row squares); the last of the tile's `split_k` programs to
    arrive sums all slices in slice order, stores the output and resets the tile's counter."""
    tile = tl.program_id(1) * tl.num_programs(0) + tl.program_id(0)
    slice_size: tl.constexpr = BLOCK_M * BLOCK_N + BLOCK_M
    local = tl.arange(0, BLOCK_M)[:, None] * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]
    local_squares = BLOCK_M * BLOCK_N + tl.arange(0, BLOCK_M)
    tile_ptr = partial_ptr + tile.to(tl.int64) * split_k * slice_size
    tl.store(tile_ptr + tl.program_id(2) * slice_size + local, acc)
    tl.store(tile_ptr + tl.program_id(2) * slice_size + local_squares, squares)
    tl.debug_barrier()  # every thread's partial is written before one thread releases the counter
    arrived = tl.atomic_add(counter_ptr + tile, 1, sem="acq_rel", scope="gpu")
    if arrived == split_k - 1:
        total = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        total_squares = tl.zeros((BLOCK_M,), dtype=tl.float32)
        for s in range(split_k):
            total += tl.load(tile_ptr + s * slice_size + local, cache_modifier=".cg")
            total_squares += tl.load(tile_ptr + s * slice_size + local_squares, cache_modifier=".cg")
        total = _scaled(total, total_squares, K, eps, PROLOGUE)
        tl.store(y_ptrs, total.to(y_ptrs.dtype.element_ty), mask=y_mask)
        tl.atomic_xchg(counter_ptr + tile, 0, sem="relaxed", scope="gpu")


@triton.jit
def rows_linear_kernel(
    a_ptr,
    r_ptr,
    norm_w_ptr,
    w_ptr,
    y_ptr,
    new_r_ptr,
    partial_ptr,
    counter_ptr,
    M,
    N,
    K,
    eps,
    split_k,
    k_per_split,
    stride_am,
    stride_rm,
    stride_new_rm,
    stride_wn,
    stride_ym,
    PROLOGUE: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    pid_n, pid_m, pid_k = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    m_mask, n_mask = offs_m < M, offs_n < N
    k_start = pid_k * k_per_split  # a last slice past K loads masked zeros
    wait_for_previous_kernel(USE_PDL)

    if PROLOGUE == PLAIN:
        acc = _plain_loop(
            a_ptr,
            w_ptr,
            offs_m,
            m_mask,
            offs_n,
            n_mask,
            K,
            k_start,
            k_per_split,
            stride_am,
            stride_wn,
            BLOCK_M,
            BLOCK_N,
            BLOCK_K,
        )
        squares = tl.zeros((BLOCK_M,), dtype=tl.float32)
    else:
        acc, squares = _prologue_loop(
            a_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, offs_m, m_mask, offs_n, n_mask, K, k_start, k_per_split,
            stride_am, stride_rm, stride_new_rm, stride_wn, PROLOGUE, HAS_RESIDUAL, BLOCK_M, BLOCK_N, BLOCK_K,
        )  # fmt: skip

    y_ptrs = y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :]
    y_mask = m_mask[:, None] & n_mask[None, :]
    if split_k == 1:
        tl.store(y_ptrs, _scaled(acc, squares, K, eps, PROLOGUE).to(y_ptr.dtype.element_ty), mask=y_mask)
    else:
        _finish_split(
            acc, squares, y_ptrs, y_mask, partial_ptr, counter_ptr, K, eps, split_k, PROLOGUE, BLOCK_M, BLOCK_N
        )
