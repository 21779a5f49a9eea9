"""Triton helpers shared by several plugin kinds: where Triton can run (support), programmatic
dependent launch (pdl), FP8 K/V quantization and its checks (fp8), q/k norm and RoPE (rope)."""
