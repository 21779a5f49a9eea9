#!/usr/bin/env bash
# nano_bench on one GPU with everything on, each switch off alone, and everything off, in one call
# (kv_cache_fp8, everything on plus kv_cache_dtype=fp8, runs when named: NAMES="all_on kv_cache_fp8" ...).
# Usage: bash scripts/gpu_nano_bench.sh RUNS_DIR [extra overrides...]
set -u
runs=$1; shift
# The defaults are everything on (conf/config.yaml), so each configuration names only what it turns off.
declare -A CONFIGS=(
  [all_on]=""
  [no_attention]="attention=sdpa"
  [no_kv_store]="kv_store=torch"
  [no_cuda_graphs]="cuda_graphs=false"
  [no_graph_sampling]="cuda_graphs=forward"
  [no_fused_graph_inputs]="fused_graph_inputs=false"
  [no_compile]="compile=false"
  [no_prefix_caching]="prefix_caching=false"
  [no_async_scheduling]="async_scheduling=false"
  [no_rope]="rope=torch"
  [no_sampler]="sampler=gumbel"
  [no_linear]="linear=torch"
  [no_pdl]="attention.pdl=false rope.pdl=false linear.pdl=false"
  [no_gemm]="linear.gemm=false"
  [no_prefetch_kv]="attention.prefetch_kv=false"
  [no_qkv_rope]="rope.fuse_qkv=false"
  [with_fuse_rope]="attention.fuse_rope=true rope.fuse_qkv=false"
  [kv_cache_fp8]="kv_cache_dtype=fp8"
  [kv_cache_fp8_no_register_cap]="kv_cache_dtype=fp8 attention.decode_max_registers=0"
  [kv_cache_fp8_two_kv_buffers]="kv_cache_dtype=fp8 attention.decode_kv_buffers=2"
  [all_off]="+preset=all_off"
)
# The sdpa configurations go last: their decode gathers whole block tables and takes minutes.
for name in ${NAMES:-all_on no_kv_store no_cuda_graphs no_compile no_prefix_caching no_async_scheduling no_rope no_sampler no_linear no_pdl no_attention all_off}; do
  echo "=== $name: ${CONFIGS[$name]} $*"
  timeout "${JOB_TIMEOUT:-240}" python run.py ${CONFIGS[$name]} "$@" hydra.run.dir="$runs/$name" 2>&1 \
    | grep -v "generate:" | tail -12
done
