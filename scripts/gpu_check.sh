#!/usr/bin/env bash
# GPU correctness in one device call: every gpu-marked test, then the kernel microbenchmark.
# On the device machine: bash scripts/gpu_check.sh   (writes gpu_tests.log, kernel_bench.json and
# kernel_bench_fp8.json to $OUT)
set -u
out=${OUT:-/tmp/out}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python -m pytest -m gpu -q tests/ 2>&1 | tee "$out/gpu_tests.log" | tail -15
python -m allmos.microbench.kernel_bench --out "$out" 2>&1 | tail -40
python -m allmos.microbench.kernel_bench_fp8 --batches 16,64,256 --out "$out/kernel_bench_fp8.json" 2>&1 | tail -8
