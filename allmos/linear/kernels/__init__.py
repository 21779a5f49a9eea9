"""The linear plugin's Triton kernels: GEMVs for one-row steps (gemv), split-K GEMMs for 2..32 rows (gemm)."""
