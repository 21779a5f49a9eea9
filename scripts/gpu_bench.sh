#!/usr/bin/env bash
# GPU figures in one device call: nano_bench with everything on, each switch off alone and everything
# off; the latency workload with CUDA graphs on and off; transformers' generate side by side.
# On the device machine: bash scripts/gpu_bench.sh   (writes records.json and hf_baseline.json to $OUT)
set -u
out=${OUT:-/tmp/out}
runs=/tmp/allmos-runs
mkdir -p "$out" "$runs"
bash scripts/gpu_nano_bench.sh "$runs/nano_bench"
for g in true false; do
  python run.py workload=latency attention=triton kv_store=triton compile=true cuda_graphs=$g \
    hydra.run.dir="$runs/latency/graphs_$g" 2>&1 | grep -E "tok/s|TPOT|FAILED"
done
python -m allmos.bench.hf_baseline --batch 64 --max-new-tokens 256 --out "$out/hf_baseline.json" 2>&1 | tail -14
python scripts/collect_records.py "$runs" "$out/records.json"
