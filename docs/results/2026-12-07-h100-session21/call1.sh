#!/bin/bash
# session 21 call 1: the multi-row GEMMs under PDL with the L2 weight prefetch
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
t0=$(date +%s)
timeout 150 python -m pytest -q -m gpu tests/gpu/test_rows_linear_gpu.py -p no:cacheprovider > $OUT/tests_rows_linear.log 2>&1; echo "tests rc=$? $(( $(date +%s)-t0 ))s"; tail -2 $OUT/tests_rows_linear.log
timeout 120 python -m allmos.microbench.rows_chain --out $OUT/chain_default > $OUT/chain_default.txt 2>&1; echo "chain rc=$? $(( $(date +%s)-t0 ))s"; cat $OUT/chain_default.txt | tail -8
timeout 260 python -m allmos.microbench.gemm_bench --pdl --out $OUT/sweep_pdl --rows 16,32,64,128,256 --projections rmsnorm+qkv,o,rmsnorm+gate_up,silu+down > $OUT/sweep_pdl.txt 2>&1; echo "sweep rc=$? $(( $(date +%s)-t0 ))s"; tail -25 $OUT/sweep_pdl.txt
timeout 100 python -m allmos.microbench.rows_chain --out $OUT/chain_swept --configs $OUT/sweep_pdl/gemm_bench.json > $OUT/chain_swept.txt 2>&1; echo "chain2 rc=$? $(( $(date +%s)-t0 ))s"; tail -8 $OUT/chain_swept.txt
