#!/bin/bash
# Session 22's prepared device calls for the two CPU-tested branches (no device machine started in session 22).
# Run from the project root on the tip of branch epilogue-gemms (it holds qkv-rope-rows too), carry [".whl"].
#   git checkout epilogue-gemms; mkdir -p calls; cp /work/notes/next_session_calls.sh calls/; then on the device:
#   bash calls/next_session_calls.sh A      (~8.5 min)   and later   bash calls/next_session_calls.sh B   (~8 min)
# Delete calls/ before stopping (untracked).
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
if [ "$1" = "A" ]; then
  # kernels, then the engine, then the step A/B at 16..256 rows, then nano_bench all_on vs with_epilogues
  timeout 100 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_rows_qkv_rope_gpu.py tests/gpu/test_gemm_epilogue_gpu.py > $OUT/tests_k.log 2>&1; t tests; tail -3 $OUT/tests_k.log
  timeout 100 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_gpu_engine.py -k "epilogues or qkv_rope" > $OUT/tests_e.log 2>&1; t engine; tail -3 $OUT/tests_e.log
  for s in "" "rope.fuse_qkv=false" "linear.epilogues=true"; do
    timeout 90 python -m allmos.microbench.step_time --batch 16 32 64 128 256 --graphs true $s 2>&1 | grep "ms per" | sed "s/^/[${s:-default}] /"
  done | tee $OUT/step_ab.txt; t step
  NAMES="all_on with_epilogues" JOB_TIMEOUT=90 bash scripts/gpu_nano_bench.sh /tmp/runs_a > $OUT/nano_ab.log 2>&1; t nano; grep -E "===|output tok/s|probe" $OUT/nano_ab.log
elif [ "$1" = "B" ]; then
  # the epilogue GEMMs' configs (gemm_bench sweep), the chain they make, a second nano_bench pair in the other order
  timeout 160 python -m allmos.microbench.gemm_bench --out $OUT/sweep --rows 16,32,64,128,256 --projections o+rmsnorm,gate_up+silu,down+rmsnorm > $OUT/sweep.txt 2>&1; t sweep; tail -18 $OUT/sweep.txt
  timeout 100 python -m allmos.microbench.rows_chain --out $OUT/chain --configs $OUT/sweep/gemm_bench.json > $OUT/chain.txt 2>&1; t chain; tail -8 $OUT/chain.txt
  NAMES="with_epilogues all_on" JOB_TIMEOUT=90 bash scripts/gpu_nano_bench.sh /tmp/runs_b > $OUT/nano_ba.log 2>&1; t nano; grep -E "===|output tok/s|probe" $OUT/nano_ba.log
fi
