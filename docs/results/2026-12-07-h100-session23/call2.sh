#!/bin/bash
# Session 23, call 2, on branch qkv-rope-rows (a68cc0c) with main (c09204b, git archive) in calls/main.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
for f in test_rows_qkv_rope_gpu test_qkv_rope_gpu test_rows_linear_gpu test_whole_step_graphs_gpu; do
  timeout 120 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/$f.py > $OUT/$f.log 2>&1; t $f: $(tail -1 $OUT/$f.log)
done
timeout 150 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_gpu_engine.py -k "qkv_rope or linear_gemm or fuse_rope or programmatic" > $OUT/engine.log 2>&1; t engine: $(tail -1 $OUT/engine.log)
step(){ timeout 100 python -m allmos.microbench.step_time --batch 1 2 8 16 24 32 --graphs true 2>&1 | grep "ms per" | sed "s/^/[$1] /"; }
{ step branch; (cd calls/main && PYTHONPATH=/tmp/site:$PWD step main); } | tee $OUT/step_ab.txt; t steps
nano(){ NAMES=all_on JOB_TIMEOUT=90 bash scripts/gpu_nano_bench.sh /tmp/runs_$1 2>&1 | grep -E "output tok/s|probe:" | sed "s/^/[$1] /"; }
{ nano branch; (cd calls/main && PYTHONPATH=/tmp/site:$PWD nano main); nano branch2; } | tee $OUT/nano_ab.txt; t nano
