#!/usr/bin/env bash
# Issue #5's figures in two device calls of under 10 minutes:
#   bash scripts/gpu_perf_check.sh tests   every gpu-marked test
#   bash scripts/gpu_perf_check.sh bench   nano_bench with everything on, then with the torch sampler (the
#                                          baseline, same call), and the batch-1 decode step (context 512,
#                                          CUDA graphs) with everything on, with linear=torch, and with the
#                                          previous all-on (linear=torch sampler=gumbel
#                                          attention.fused_combine=false)
# Writes logs, records and step times to $OUT.
set -u
part=${1:?usage: gpu_perf_check.sh tests|bench}
out=${OUT:-/tmp/out}
runs=/tmp/allmos-runs/perf
mkdir -p "$out" "$runs"
ON="attention=triton kv_store=triton rope=triton sampler=triton linear=triton compile=true prefix_caching=true async_scheduling=true"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ "$part" = tests ]; then
  python -m pytest -m gpu -q tests/ > "$out/gpu_tests.log" 2>&1; grep -E "FAILED|ERROR" "$out/gpu_tests.log" | head -20
  tail -2 "$out/gpu_tests.log"
  exit 0
fi
for point in "all_on:" "sampler_gumbel:sampler=gumbel"; do
  name=${point%%:*}; extra=${point#*:}
  echo "=== nano_bench $name: $ON cuda_graphs=true $extra"
  python run.py $ON cuda_graphs=true $extra hydra.run.dir="$runs/$name" 2>&1 | grep -E "tok/s|TPOT|FAILED" | head -3
done
python scripts/collect_records.py "$runs" "$out/records-perf.json"
for point in "all_on:" "linear_torch:linear=torch" "previous_all_on:linear=torch sampler=gumbel attention.fused_combine=false"; do
  name=${point%%:*}; extra=${point#*:}
  echo "=== batch-1 step $name: $ON $extra"
  python -m allmos.bench.step_time --graphs true --out "$out/step_$name.json" $ON $extra 2>&1 | tail -1
done
