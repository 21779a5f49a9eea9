#!/usr/bin/env bash
# GPU figures, in parts for device calls of at most 10 minutes:
#   bash scripts/gpu_bench.sh nano     nano_bench: everything on, each switch off alone, everything off
#                                      (~12 min in all: split it, e.g. NAMES="no_attention all_off" bash ...)
#   bash scripts/gpu_bench.sh latency  the latency workload with CUDA graphs on and off, batch-1 decode step
#                                      time with and without graphs, the transformers side-by-side, and the
#                                      step and kernel profile of the all-on configuration
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
      # everything on (the default) but prefix caching, as these figures have always been taken
      python run.py workload=latency prefix_caching=false cuda_graphs=$g \
        hydra.run.dir="$runs/graphs_$g" 2>&1 | grep -E "tok/s|TPOT|FAILED"
    done
    python -m allmos.microbench.step_time --batch 1 --context 512 --out "$out/step_time.json" prefix_caching=false \
      2>&1 | tail -2
    python -m allmos.microbench.hf_baseline --batch 64 --max-new-tokens 256 --out "$out/hf_baseline.json" 2>&1 | tail -14
    python -m allmos.microbench.profile_steps --kernels 10 --out "$out/profile.json" prefix_caching=false 2>&1 | tail -30
    ;;
  *) echo "unknown part $part" >&2; exit 2 ;;
esac
python scripts/collect_records.py "$runs" "$out/records-$part.json"
