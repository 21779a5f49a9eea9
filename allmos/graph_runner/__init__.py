"""Graph runners: how the model's forward runs (eager, or replayed from CUDA graphs); `cuda_graphs=` picks one."""
