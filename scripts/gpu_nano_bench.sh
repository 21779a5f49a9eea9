#!/usr/bin/env bash
# nano_bench on one GPU with everything on, each switch off alone, and everything off, in one call.
# Usage: bash scripts/gpu_nano_bench.sh RUNS_DIR [extra overrides...]
set -u
runs=$1; shift
ON="attention=triton kv_store=triton cuda_graphs=true compile=true prefix_caching=true async_scheduling=true rope=triton sampler=triton linear=triton"
declare -A CONFIGS=(
  [all_on]="$ON"
  [no_attention]="$ON attention=sdpa"
  [no_kv_store]="$ON kv_store=torch"
  [no_cuda_graphs]="$ON cuda_graphs=false"
  [no_compile]="$ON compile=false"
  [no_prefix_caching]="$ON prefix_caching=false"
  [no_async_scheduling]="$ON async_scheduling=false"
  [no_rope]="$ON rope=torch"
  [no_sampler]="$ON sampler=gumbel"
  [no_linear]="$ON linear=torch"
  [no_pdl]="$ON attention.pdl=false rope.pdl=false linear.pdl=false"
  [no_gemm]="$ON linear.gemm=false"
  [all_off]="attention=sdpa kv_store=torch cuda_graphs=false compile=false prefix_caching=false async_scheduling=false"
)
# The sdpa configurations go last: their decode gathers whole block tables and takes minutes.
for name in ${NAMES:-all_on no_kv_store no_cuda_graphs no_compile no_prefix_caching no_async_scheduling no_rope no_sampler no_linear no_pdl no_attention all_off}; do
  echo "=== $name: ${CONFIGS[$name]} $*"
  timeout "${JOB_TIMEOUT:-240}" python run.py ${CONFIGS[$name]} "$@" hydra.run.dir="$runs/$name" 2>&1 \
    | grep -v "generate:" | tail -12
done
