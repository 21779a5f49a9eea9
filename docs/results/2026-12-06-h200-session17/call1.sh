# Session 17, call 1: attention.fp8_mma's first GPU run (tests, kernel_bench, nano_bench A/B against the
# widening FP8 decode), on any card. On an H200 also main's everything-on figure (issue 22).
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
date +%T
timeout 150 python -m pytest -q -m gpu tests/gpu/test_fp8_kernels_gpu.py -x 2>&1 | tail -15 | tee $OUT/fp8_kernel_tests.log
date +%T
timeout 90 python -m allmos.microbench.kernel_bench_fp8 --fp8-mma --batches 16,64,256 --out $OUT/kernel_bench_fp8_mma.json 2>&1 | tail -14 | tee $OUT/kernel_bench_fp8_mma.txt
date +%T
NAMES="kv_cache_fp8 kv_cache_fp8_mma" JOB_TIMEOUT=120 bash scripts/gpu_nano_bench.sh /tmp/n > $OUT/nano_fp8_mma.log 2>&1
grep -E "===|output tok/s|probe:|roofline|Error|error" $OUT/nano_fp8_mma.log | grep -v "probe: done"; date +%T
if grep -q H200 $OUT/gpu.txt; then
  NAMES="all_on" JOB_TIMEOUT=120 bash scripts/gpu_nano_bench.sh /tmp/n > $OUT/nano_all_on.log 2>&1
  grep -E "===|output tok/s|probe:" $OUT/nano_all_on.log | grep -v "probe: done"; date +%T
fi
left=$((560 - SECONDS))
[ $left -gt 120 ] && timeout $left python -m pytest -q -m gpu tests/gpu/test_gpu_engine.py -k "fp8_mma" -x 2>&1 | tail -15 | tee $OUT/engine_fp8_mma_test.log
date +%T
