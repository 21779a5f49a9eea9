"""One kernel loads a replay's inputs into a captured graph's static tensors (fused_graph_inputs=true).

Without it, each replay copies the input ids, positions, slots, context lengths and block table into the
static tensors and pads the slots and lengths of the rows up to the bucket: about nine small copies and
fills, each its own launch on the GPU's queue ahead of the graph. Here each program loads a block of rows of
every tensor (and the sampler's temperatures and seed), so a replay waits for one launch instead.
The counts and widths are not specialized on, so one compiled kernel serves every bucket and table width.
"""

from __future__ import annotations

import triton
import triton.language as tl

BLOCK_ROWS = 64
BLOCK_COLS = 16  # block-table entries a program copies per row and loop turn


@triton.jit(do_not_specialize=["n", "bucket", "width", "src_table_stride", "dst_table_stride"])
def _load_static_inputs_kernel(
    src_ids, src_positions, src_slots, src_context, src_table, src_temps, src_seed,
    dst_ids, dst_positions, dst_slots, dst_context, dst_table, dst_temps, dst_seed,
    n, bucket, width, src_table_stride, dst_table_stride,
    HAS_SAMPLING: tl.constexpr, BLOCK_ROWS: tl.constexpr, BLOCK_COLS: tl.constexpr,
):  # fmt: skip
    rows = tl.program_id(0) * BLOCK_ROWS + tl.arange(0, BLOCK_ROWS)
    live = rows < n
    padding = (rows >= n) & (rows < bucket)  # rows of the bucket beyond the batch: no slot, no context
    in_bucket = rows < bucket
    tl.store(dst_ids + rows, tl.load(src_ids + rows, mask=live), mask=live)
    tl.store(dst_positions + rows, tl.load(src_positions + rows, mask=live), mask=live)
    slots = tl.where(padding, -1, tl.load(src_slots + rows, mask=live, other=-1))
    tl.store(dst_slots + rows, slots, mask=in_bucket)
    context = tl.where(padding, 0, tl.load(src_context + rows, mask=live, other=0))
    tl.store(dst_context + rows, context, mask=in_bucket)
    for c0 in range(0, width, BLOCK_COLS):
        cols = c0 + tl.arange(0, BLOCK_COLS)
        mask = live[:, None] & (cols < width)[None, :]
        entries = tl.load(src_table + rows[:, None] * src_table_stride + cols[None, :], mask=mask)
        tl.store(dst_table + rows[:, None] * dst_table_stride + cols[None, :], entries, mask=mask)
    if HAS_SAMPLING:
        temps = tl.load(src_temps + rows, mask=live, other=0.0)  # padding rows: temperature 0, no draw
        tl.store(dst_temps + rows, temps, mask=in_bucket)
        if tl.program_id(0) == 0:
            tl.store(dst_seed, tl.load(src_seed))


def load_static_inputs(static, input_ids, positions, meta, bucket: int, sampling=None) -> None:
    """Load a step's inputs (and, given `sampling` = (temperatures, seed), the sampler's) into `static`
    (allmos.graph_runner.cuda_graph.StaticInputs): the values its copies store, in one launch."""
    n, width = meta.block_tables.shape
    table = meta.block_tables
    if table.stride(1) != 1 or static.block_tables.stride(1) != 1:
        raise ValueError("load_static_inputs: block tables must be contiguous along their rows")
    temps, seed = sampling if sampling is not None else (static.temperatures, static.seed)
    grid = (triton.cdiv(bucket, BLOCK_ROWS),)
    _load_static_inputs_kernel[grid](
        input_ids, positions, meta.slot_mapping, meta.context_lens, table, temps, seed,
        static.input_ids, static.positions, static.slot_mapping, static.context_lens, static.block_tables,
        static.temperatures, static.seed,
        n, bucket, width, table.stride(0), static.block_tables.stride(0),
        HAS_SAMPLING=sampling is not None, BLOCK_ROWS=BLOCK_ROWS, BLOCK_COLS=BLOCK_COLS,
    )  # fmt: skip
