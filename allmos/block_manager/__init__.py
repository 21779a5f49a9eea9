"""Block managers: who owns which KV block; `prefix_caching=` picks one."""
