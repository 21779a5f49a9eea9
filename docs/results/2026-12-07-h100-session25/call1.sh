#!/bin/bash
# Session 25, call 1 (prepared in session 24): the persistent batch-1 layers probe against the kernel-per-GEMV chain.
# Copy into calls/ of main and run with carry [".whl"]. About 3-4 min on a started machine.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
timeout 150 python -m allmos.microbench.persistent_chain --layers 28 --context 512 --warps 8,16 --out $OUT/pc512 > $OUT/pc512.txt 2>&1; t chain512; tail -9 $OUT/pc512.txt
timeout 150 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_chain_probes_gpu.py -k persistent > $OUT/test.log 2>&1; t test: $(tail -n 1 $OUT/test.log); grep -E "^E " $OUT/test.log | head -8
timeout 120 python -m allmos.microbench.persistent_chain --layers 28 --warps 8,16,32 --out $OUT/pc0 > $OUT/pc0.txt 2>&1; t chain0; tail -12 $OUT/pc0.txt
timeout 60 python -m allmos.microbench.step_time --batch 1 --graphs true > $OUT/step.txt 2>&1; t step; tail -2 $OUT/step.txt
