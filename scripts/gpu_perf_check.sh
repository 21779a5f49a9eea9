#!/usr/bin/env bash
# Issue #5's figures in two device calls of under 10 minutes:
#   bash scripts/gpu_perf_check.sh tests   every gpu-marked test
#   bash scripts/gpu_perf_check.sh bench   nano_bench and the latency workload (batch-1 TPOT) with
#                                          everything on, and the batch-1 decode step (context 512, CUDA
#                                          graphs) with everything on
# Writes logs, records and step times to $OUT.
set -u
part=${1:?usage: gpu_perf_check.sh tests|bench}
out=${OUT:-/tmp/out}
runs=/tmp/allmos-runs/perf
mkdir -p "$out" "$runs"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
if [ "$part" = tests ]; then
  python -m pytest -m gpu -q tests/ > "$out/gpu_tests.log" 2>&1; grep -E "FAILED|ERROR" "$out/gpu_tests.log" | head -20
  tail -2 "$out/gpu_tests.log"
  exit 0
fi
# Everything on is the default (conf/config.yaml), so the runs pass no switches.
echo "=== nano_bench all_on: python run.py"
python run.py hydra.run.dir="$runs/all_on" 2>&1 | grep -E "tok/s|TPOT|FAILED" | head -3
echo "=== latency all_on: python run.py workload=latency"
python run.py workload=latency hydra.run.dir="$runs/latency_all_on" 2>&1 | grep -E "tok/s|TPOT|FAILED" | head -3
python scripts/collect_records.py "$runs" "$out/records-perf.json"
echo "=== batch-1 step all_on (the LLM defaults)"
python -m allmos.microbench.step_time --graphs true --out "$out/step_all_on.json" 2>&1 | tail -1
