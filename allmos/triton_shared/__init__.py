"""Triton helpers shared by several plugin kinds: where Triton can run (support), programmatic
dependent launch (pdl)."""
