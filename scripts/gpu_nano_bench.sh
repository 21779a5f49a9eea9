#!/usr/bin/env bash
# nano_bench on one GPU with everything on, each switch off alone, and everything off, in one call.
# Usage: bash scripts/gpu_nano_bench.sh RUNS_DIR [extra overrides...]
set -u
runs=$1; shift
declare -A CONFIGS=(
  [all_on]="attention=triton kv_store=triton cuda_graphs=true compile=true prefix_caching=true"
  [no_attention]="attention=sdpa kv_store=triton cuda_graphs=true compile=true prefix_caching=true"
  [no_kv_store]="attention=triton kv_store=torch cuda_graphs=true compile=true prefix_caching=true"
  [no_cuda_graphs]="attention=triton kv_store=triton cuda_graphs=false compile=true prefix_caching=true"
  [no_compile]="attention=triton kv_store=triton cuda_graphs=true compile=false prefix_caching=true"
  [no_prefix_caching]="attention=triton kv_store=triton cuda_graphs=true compile=true prefix_caching=false"
  [all_off]="attention=sdpa kv_store=torch cuda_graphs=false compile=false prefix_caching=false"
)
for name in all_on no_attention no_kv_store no_cuda_graphs no_compile no_prefix_caching all_off; do
  echo "=== $name: ${CONFIGS[$name]} $*"
  python run.py ${CONFIGS[$name]} "$@" hydra.run.dir="$runs/$name" 2>&1 | grep -v "generate:" | tail -12
done
