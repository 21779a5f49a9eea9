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
def prefetch_rows(w_ptr, first_row, rows, n_rows, k_cols, BN: tl.constexpr):
    """Rows [first_row, first_row + rows) of a row-major [n_rows, k_cols] matrix into the L2, one bulk prefetch
    a row (rows of k_cols elements must be whole multiples of 16 bytes, the matrix 16-byte aligned)."""
    r = tl.arange(0, BN)
    n = first_row + r
    live = (r < rows) & (n < n_rows)
    row_bytes = k_cols * (w_ptr.dtype.element_ty.primitive_bitwidth // 8)
    prefetch_to_l2(w_ptr + n.to(tl.int64) * k_cols, tl.where(live, row_bytes, 0))
