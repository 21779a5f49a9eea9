#!/bin/bash
# Session 24, call 1: rows_chain's deferred-norm variant beside torch (main at ebf1029).
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
timeout 100 python -m allmos.microbench.rows_chain --variants torch,deferred --rows 64,128,256 --out $OUT/chain > $OUT/chain.txt 2>&1; t chain; tail -6 $OUT/chain.txt
timeout 60 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_chain_probes_gpu.py -k deferred > $OUT/test.log 2>&1; t test: $(tail -n 1 $OUT/test.log)
timeout 120 python -m allmos.microbench.step_time --batch 1 64 128 256 --graphs true > $OUT/step.txt 2>&1; t step; tail -8 $OUT/step.txt
