#!/usr/bin/env bash
# GPU figures, each part sized for one device call (< 10 minutes):
#   bash scripts/gpu_bench.sh nano     nano_bench: everything on, each switch off alone, everything off
#   bash scripts/gpu_bench.sh latency  the latency workload with CUDA graphs on and off, the transformers
#                                      side-by-side, and the step profile of the all-on configuration
# Records are gathered into $OUT/records-<part>.json (a device call brings back only a few files).
set -u
part=${1:?usage: gpu_bench.sh nano|latency}
out=${OUT:-/tmp/out}
runs=/tmp/allmos-runs/$part
mkdir -p "$out" "$runs"
case $part in
  nano)
    bash scripts/gpu_nano_bench.sh "$runs"
    ;;
  latency)
    for g in true false; do
      python run.py workload=latency attention=triton kv_store=triton compile=true cuda_graphs=$g \
        hydra.run.dir="$runs/graphs_$g" 2>&1 | grep -E "tok/s|TPOT|FAILED"
    done
    python -m allmos.bench.hf_baseline --batch 64 --max-new-tokens 256 --out "$out/hf_baseline.json" 2>&1 | tail -14
    python -m allmos.bench.profile_steps --out "$out/profile.json" attention=triton kv_store=triton \
      cuda_graphs=true compile=true 2>&1 | tail -4
    ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
python scripts/collect_records.py "$runs" "$out/records-$part.json"
