# Session 17, call 4: FP8 decode widening e4m3 by bit operations (old_tree = main + widen_e4m3 prototype)
# against main's cvt widening, kernel_bench_fp8 alternating, then the FP8 GPU tests on the prototype, then
# nano_bench kv_cache_fp8 on both.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
M=$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
date +%T
for r in 1 2; do for t in main proto; do
  d=$M; [ $t = proto ] && d=$M/old_tree
  echo "== $t (round $r)"
  (cd $d && PYTHONPATH=/tmp/site:$d timeout 60 python -m allmos.microbench.kernel_bench_fp8 --batches 16,64,256 2>&1 | tail -3)
done; done 2>&1 | tee $OUT/widen_kernel_bench.log
date +%T
(cd old_tree && PYTHONPATH=/tmp/site:$M/old_tree timeout 100 python -m pytest -q -m gpu tests/gpu/test_fp8_kernels_gpu.py -k "not fp8_mma" 2>&1 | tail -4) | tee $OUT/widen_gpu_tests.log
date +%T
for t in proto main; do
  d=$M; [ $t = proto ] && d=$M/old_tree
  (cd $d && PYTHONPATH=/tmp/site:$d NAMES="kv_cache_fp8" JOB_TIMEOUT=100 bash scripts/gpu_nano_bench.sh /tmp/n_$t 2>&1 | grep -E "===|output tok/s|probe:|roofline" | grep -v "probe: done") | sed "s/^/$t: /"
done 2>&1 | tee $OUT/widen_nano.log
date +%T
