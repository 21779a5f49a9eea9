#!/bin/bash
# Session 26, call 1 (asked as nvidia-h200, ran on an H100; calls/old_tree = git archive of main c5cf8cf, the tree =
# main plus unmasked_decode_loop.diff): the FP8 decode with whole tiles unmasked (tree) against main (calls/old_tree), alternating;
# the FP8 decode's stages and V layout on this card; the decode GPU tests.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
M=$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
kb(){ (cd $1 && PYTHONPATH=/tmp/site:$PWD timeout 80 python -m allmos.microbench.kernel_bench_fp8 --batches 64,256 --context 1024 --out $OUT/kb_$2.json > $OUT/kb_$2.txt 2>&1); t kb $2; grep -v -i warn $OUT/kb_$2.txt | tail -3; }
kb $M/calls/old_tree main1; kb $M tree1; kb $M/calls/old_tree main2; kb $M tree2
export PYTHONPATH=/tmp/site:$M
timeout 100 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_fp8_kernels_gpu.py tests/gpu/test_triton_kernels_gpu.py -k "decode" > $OUT/test.log 2>&1; t test: $(tail -n 1 $OUT/test.log); grep -E "^(E |FAILED)" $OUT/test.log | head -8
for L in "" "--v-dim-major"; do
  timeout 70 python -m allmos.microbench.kernel_bench_fp8 --batches 64,256 --context 1024 --tiles 128 --stages 2,5 $L > $OUT/kb_sweep$L.txt 2>&1; t sweep$L; grep -v -i warn $OUT/kb_sweep$L.txt | tail -5
done
