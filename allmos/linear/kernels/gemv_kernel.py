"""The Triton kernels behind allmos.linear.kernels.gemv (what they compute, how they stream the weights and why
PDL helps: see that module): the shared per-chunk helpers, and one kernel per fused prologue."""

import triton
import triton.language as tl

from allmos.triton_shared.pdl import wait_for_previous_kernel


@triton.jit
def _tile_offsets(M, N, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
    offs_m = tl.arange(0, BLOCK_M)
    offs_n = tl.program_id(0) * BLOCK_N + tl.arange(0, BLOCK_N)
    return offs_m, offs_m < M, offs_n, offs_n < N


@triton.jit
def _load_rows(ptr, offs_m, m_mask, stride_m, offs_k, k_mask):
    """[BLOCK_M, BLOCK_K] chunk of a row-major input as float32; 0 outside the rows and K."""
    mask = m_mask[:, None] & k_mask[None, :]
    return tl.load(ptr + offs_m[:, None] * stride_m + offs_k[None, :], mask=mask, other=0.0).to(tl.float32)


@triton.jit
def round_to_dtype(value, dtype: tl.constexpr):
    """Round a float32 value to `dtype` (as a torch op with `dtype` output does) and widen it back."""
    return value.to(dtype).to(tl.float32)


@triton.jit
def _weight_chunk(w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask):
    mask = n_mask[:, None] & k_mask[None, :]
    return tl.load(w_ptr + offs_n[:, None] * stride_wn + offs_k[None, :], mask=mask, other=0.0)


@triton.jit
def _first_weight_chunk(
    w_ptr, stride_wn, offs_n, n_mask, K: tl.constexpr, BLOCK_K: tl.constexpr, USE_PDL: tl.constexpr
):
    """The weights of the first K chunk; under PDL loaded before waiting for the previous kernel, after
    which the program may read what that kernel wrote and write what it read."""
    offs_k = tl.arange(0, BLOCK_K)
    w = _weight_chunk(w_ptr, stride_wn, offs_n, n_mask, offs_k, offs_k < K)
    wait_for_previous_kernel(USE_PDL)
    return w


@triton.jit
def _new_accumulator(BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """[BLOCK_M, BLOCK_N, BLOCK_K] float32 zeros; [BLOCK_N, BLOCK_K] at one row, so that the products
    keep the weight chunk's own register layout: the 3-D broadcast would first move the whole chunk
    through shared memory into another layout (barriers after the PDL wait, on the critical path)."""
    if BLOCK_M == 1:
        acc = tl.zeros((BLOCK_N, BLOCK_K), dtype=tl.float32)
    else:
        acc = tl.zeros((BLOCK_M, BLOCK_N, BLOCK_K), dtype=tl.float32)
    return acc


@triton.jit
def _accumulate(acc, a, w_first, w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask, k0: tl.constexpr):
    """acc (_new_accumulator) += a [BLOCK_M, BLOCK_K] (float32) times the weight chunk at k0 (w_first when
    k0 is 0)."""
    if k0 == 0:
        w = w_first
    else:
        w = _weight_chunk(w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask)
    if a.shape[0] == 1:
        acc = acc + a * w.to(tl.float32)  # [1, BLOCK_K] broadcast over the chunk's rows
    else:
        acc = acc + a[:, None, :] * w.to(tl.float32)[None, :, :]
    return acc


@triton.jit
def _store_output(y_ptr, stride_ym, acc, offs_m, m_mask, offs_n, n_mask):
    if offs_m.shape[0] == 1:
        y = tl.sum(acc, axis=1)[None, :]
    else:
        y = tl.sum(acc, axis=2)
    mask = m_mask[:, None] & n_mask[None, :]
    tl.store(y_ptr + offs_m[:, None] * stride_ym + offs_n[None, :], y.to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _skinny_linear_kernel(
    x_ptr,
    w_ptr,
    y_ptr,
    M,
    N,
    stride_xm,
    stride_wn,
    stride_ym,
    K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    offs_m, m_mask, offs_n, n_mask = _tile_offsets(M, N, BLOCK_M, BLOCK_N)
    w_first = _first_weight_chunk(w_ptr, stride_wn, offs_n, n_mask, K, BLOCK_K, USE_PDL)
    acc = _new_accumulator(BLOCK_M, BLOCK_N, BLOCK_K)
    for k0 in tl.static_range(0, K, BLOCK_K):  # K is a model dimension: one compile per layer shape
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        x = _load_rows(x_ptr, offs_m, m_mask, stride_xm, offs_k, k_mask)
        acc = _accumulate(acc, x, w_first, w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask, k0)
    _store_output(y_ptr, stride_ym, acc, offs_m, m_mask, offs_n, n_mask)


@triton.jit
def _residual_chunk(x_ptr, stride_xm, r_ptr, stride_rm, offs_m, m_mask, offs_k, k_mask, HAS_RESIDUAL: tl.constexpr):
    """x + residual rounded to x's dtype (as float32), or x alone."""
    h = _load_rows(x_ptr, offs_m, m_mask, stride_xm, offs_k, k_mask)
    if HAS_RESIDUAL:
        h = round_to_dtype(h + _load_rows(r_ptr, offs_m, m_mask, stride_rm, offs_k, k_mask), x_ptr.dtype.element_ty)
    return h


@triton.jit
def _add_rms_norm_linear_kernel(
    x_ptr,
    r_ptr,
    norm_w_ptr,
    w_ptr,
    y_ptr,
    new_r_ptr,
    M,
    N,
    eps,
    stride_xm,
    stride_rm,
    stride_new_rm,
    stride_wn,
    stride_ym,
    K: tl.constexpr,
    HAS_RESIDUAL: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    offs_m, m_mask, offs_n, n_mask = _tile_offsets(M, N, BLOCK_M, BLOCK_N)
    acc = norm_product(
        x_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, M, N, eps, stride_xm, stride_rm, stride_new_rm, stride_wn,
        offs_m, m_mask, offs_n, n_mask, K, HAS_RESIDUAL, BLOCK_M, BLOCK_N, BLOCK_K, USE_PDL,
    )  # fmt: skip
    _store_output(y_ptr, stride_ym, acc, offs_m, m_mask, offs_n, n_mask)


@triton.jit
def norm_product(
    x_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, M, N, eps, stride_xm, stride_rm, stride_new_rm, stride_wn, offs_m,
    m_mask, offs_n, n_mask, K: tl.constexpr, HAS_RESIDUAL: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, USE_PDL: tl.constexpr,
):  # fmt: skip
    """The accumulator tile of rms_norm(x + residual) times the program's weight rows (and x + residual
    stored by program 0), waiting for the previous kernel after the first weight chunk's load."""
    dtype = x_ptr.dtype.element_ty
    if K <= BLOCK_K:  # one chunk: x + residual is read once, and the norm weight before the wait
        offs_k = tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        norm_w = tl.load(norm_w_ptr + offs_k, mask=k_mask, other=0.0).to(tl.float32)
        w_first = _first_weight_chunk(w_ptr, stride_wn, offs_n, n_mask, K, BLOCK_K, USE_PDL)
        h = _residual_chunk(x_ptr, stride_xm, r_ptr, stride_rm, offs_m, m_mask, offs_k, k_mask, HAS_RESIDUAL)
        if HAS_RESIDUAL:
            writes_residual = tl.program_id(0) == 0  # the others only read x and residual
            new_r_ptrs = new_r_ptr + offs_m[:, None] * stride_new_rm + offs_k[None, :]
            tl.store(new_r_ptrs, h.to(dtype), mask=m_mask[:, None] & k_mask[None, :] & writes_residual)
        inv_rms = tl.rsqrt(tl.sum(h * h, axis=1) / K + eps)
        normed = round_to_dtype(norm_w[None, :] * round_to_dtype(h * inv_rms[:, None], dtype), dtype)
        acc = _new_accumulator(BLOCK_M, BLOCK_N, BLOCK_K)
        acc = _accumulate(acc, normed, w_first, w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask, 0)
    else:
        acc = _two_pass_norm_product(
            x_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, M, N, eps, stride_xm, stride_rm, stride_new_rm, stride_wn,
            offs_m, m_mask, offs_n, n_mask, K, HAS_RESIDUAL, BLOCK_M, BLOCK_N, BLOCK_K, USE_PDL,
        )  # fmt: skip
    return acc


@triton.jit
def _two_pass_norm_product(
    x_ptr, r_ptr, norm_w_ptr, w_ptr, new_r_ptr, M, N, eps, stride_xm, stride_rm, stride_new_rm, stride_wn, offs_m,
    m_mask, offs_n, n_mask, K: tl.constexpr, HAS_RESIDUAL: tl.constexpr, BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, USE_PDL: tl.constexpr,
):  # fmt: skip
    """Rows longer than a chunk: a first pass for the sum of squares (and the new residual), a second that
    normalizes each chunk again as it multiplies it."""
    dtype = x_ptr.dtype.element_ty
    w_first = _first_weight_chunk(w_ptr, stride_wn, offs_n, n_mask, K, BLOCK_K, USE_PDL)
    writes_residual = tl.program_id(0) == 0  # the others only read x and residual
    squares = tl.zeros((BLOCK_M, BLOCK_K), dtype=tl.float32)
    for k0 in tl.static_range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        h = _residual_chunk(x_ptr, stride_xm, r_ptr, stride_rm, offs_m, m_mask, offs_k, k_mask, HAS_RESIDUAL)
        if HAS_RESIDUAL:
            new_r_ptrs = new_r_ptr + offs_m[:, None] * stride_new_rm + offs_k[None, :]
            tl.store(new_r_ptrs, h.to(dtype), mask=m_mask[:, None] & k_mask[None, :] & writes_residual)
        squares += h * h
    inv_rms = tl.rsqrt(tl.sum(squares, axis=1) / K + eps)

    acc = _new_accumulator(BLOCK_M, BLOCK_N, BLOCK_K)
    for k0 in tl.static_range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        h = _residual_chunk(x_ptr, stride_xm, r_ptr, stride_rm, offs_m, m_mask, offs_k, k_mask, HAS_RESIDUAL)
        norm_w = tl.load(norm_w_ptr + offs_k, mask=k_mask, other=0.0).to(tl.float32)
        normed = round_to_dtype(norm_w[None, :] * round_to_dtype(h * inv_rms[:, None], dtype), dtype)
        acc = _accumulate(acc, normed, w_first, w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask, k0)
    return acc


@triton.jit
def _silu_mul_linear_kernel(
    gate_up_ptr,
    w_ptr,
    y_ptr,
    M,
    N,
    stride_gm,
    stride_wn,
    stride_ym,
    K: tl.constexpr,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    USE_PDL: tl.constexpr,
):
    dtype = gate_up_ptr.dtype.element_ty
    offs_m, m_mask, offs_n, n_mask = _tile_offsets(M, N, BLOCK_M, BLOCK_N)
    w_first = _first_weight_chunk(w_ptr, stride_wn, offs_n, n_mask, K, BLOCK_K, USE_PDL)
    acc = _new_accumulator(BLOCK_M, BLOCK_N, BLOCK_K)
    for k0 in tl.static_range(0, K, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K)
        k_mask = offs_k < K
        gate = _load_rows(gate_up_ptr, offs_m, m_mask, stride_gm, offs_k, k_mask)
        up = _load_rows(gate_up_ptr + K, offs_m, m_mask, stride_gm, offs_k, k_mask)
        silu = round_to_dtype(gate / (1.0 + tl.exp(-gate)), dtype)
        silu_up = round_to_dtype(silu * up, dtype)
        acc = _accumulate(acc, silu_up, w_first, w_ptr, stride_wn, offs_n, n_mask, offs_k, k_mask, k0)
    _store_output(y_ptr, stride_ym, acc, offs_m, m_mask, offs_n, n_mask)
