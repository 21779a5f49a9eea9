"""Triton attention kernels over a paged KV cache.

Cache layout: k_cache / v_cache are [num_blocks, block_size, num_kv_heads, head_dim] with a unit stride in
head_dim. `block_tables[b, i]` is the physical block holding tokens [i * block_size, (i + 1) * block_size)
of sequence b.

The wrappers (decode.paged_decode_attention, prefill.paged_prefill_attention) are CUDA-graph
capturable: they read no tensor values on the host, and every shape they
allocate depends only on input shapes and host ints.

Scores are computed in the log2 domain (scale * log2(e) folded into one multiplier) so the softmax uses
exp2. Accumulation is float32; outputs are written in the dtype of `out` (q's dtype by default).
"""
