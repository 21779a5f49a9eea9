"""The KV store's Triton kernel."""
