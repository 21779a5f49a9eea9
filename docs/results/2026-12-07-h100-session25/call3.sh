#!/bin/bash
# Session 26, call 1 (prepared in session 25): the persistent probe's `l2` mode with one prefetch piece a thread
# (67f6e2a; session 25's call 2 measured the replicated version: 40.16 / 54.86 us a layer), against `none`;
# then, on an H200 only, issue 22/21's table (batch-1 step, nano_bench all_on and kv_cache_fp8).
# Copy into calls/ of main and run with carry [".whl"]. About 1.5 min on an H100, 6 on an H200.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
timeout 100 python -m allmos.microbench.persistent_chain --layers 28 --warps 8 --prefetch none,l2 --out $OUT/pc0 > $OUT/pc0.txt 2>&1; t chain0; tail -5 $OUT/pc0.txt
timeout 80 python -m allmos.microbench.persistent_chain --layers 28 --context 512 --warps 8 --prefetch none,l2 --out $OUT/pc512 > $OUT/pc512.txt 2>&1; t chain512; tail -5 $OUT/pc512.txt
if grep -q H200 $OUT/gpu.txt; then
  timeout 60 python -m allmos.microbench.step_time --batch 1 --graphs true > $OUT/step.txt 2>&1; t step; tail -2 $OUT/step.txt
  NAMES="all_on kv_cache_fp8" JOB_TIMEOUT=200 bash scripts/gpu_nano_bench.sh $OUT/nano > $OUT/nano.txt 2>&1; t nano; grep -E "===|output tok/s|probe|roofline" $OUT/nano.txt | head -20
fi
timeout 100 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_chain_probes_gpu.py -k persistent > $OUT/test.log 2>&1; t test: $(tail -n 1 $OUT/test.log); grep -E "^E " $OUT/test.log | head -8
