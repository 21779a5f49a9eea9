"""The sampler's Triton kernels (Gumbel-max with Philox noise in registers)."""
