"""Bulk prefetches into the L2 from inside a Triton kernel (sm_90's cp.async.bulk.prefetch.L2, inline PTX: a
compiled kernel only, not the interpreter). A prefetch has no result and does not wait: the data is on its way
to the L2 while the kernel goes on, and a later load of it hits the L2."""

import triton
import triton.language as tl


@triton.jit
def prefetch_to_l2(ptrs, nbytes):
    """At each pointer (16-byte aligned), ask the L2 for `nbytes` (int32, a multiple of 16); an element with 0
    asks for nothing. The zeros returned only anchor the asm (is_pure=False keeps it)."""
    return tl.inline_asm_elementwise(
        asm="""{
        .reg .pred p;
        setp.ne.u32 p, $2, 0;
        @p cp.async.bulk.prefetch.L2.global [$1], $2;
        mov.u32 $0, 0;
        }""",
        constraints="=r,l,r",
        args=[ptrs, nbytes],
        dtype=tl.int32,
        is_pure=False,
        pack=1,
    )


@triton.jit
def prefetch_rows(w_ptr, first_row, rows, n_rows, k_cols, THREADS: tl.constexpr):
    """Rows [first_row, first_row + rows) of a row-major [n_rows, k_cols] matrix (16-byte aligned, rows a whole
    number of 16 bytes) into the L2: the contiguous span cut in THREADS pieces, one a thread. THREADS must be
    the program's thread count (32 x num_warps), so that no piece is asked for twice (a tensor smaller than
    the program is replicated over its threads, and each copy would issue its own prefetch)."""
    element_bytes: tl.constexpr = w_ptr.dtype.element_ty.primitive_bitwidth // 8
    live_rows = tl.maximum(tl.minimum(rows, n_rows - first_row), 0)
    span = live_rows * k_cols * element_bytes
    piece = tl.cdiv(span, THREADS * 16) * 16
    offset = tl.arange(0, THREADS) * piece
    nbytes = tl.minimum(tl.maximum(span - offset, 0), piece)
    start = (w_ptr + first_row.to(tl.int64) * k_cols).to(tl.pointer_type(tl.int8))
    prefetch_to_l2(start + offset, nbytes)
