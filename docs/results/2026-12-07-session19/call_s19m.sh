# Session 19, minimal call (little device time left): the FP8 decode with one K/V buffer per program against two, kernel and nano_bench
set -u
L=${LIMIT:-300}
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
timeout 70 python -m allmos.microbench.kernel_bench_fp8 --batches ${BATCHES:-64,256} --context 2048 --tiles 128 --stages 2,5 --out $OUT/kb_stages.json 2>&1 | grep -v Warn | tee $OUT/kb_stages.txt
echo "nano $SECONDS"
for b in ${NANO_BUFFERS-2 1}; do
  [ $SECONDS -lt $((L - 80)) ] || continue
  NAMES="kv_cache_fp8" JOB_TIMEOUT=100 bash scripts/gpu_nano_bench.sh /tmp/n_$b attention.decode_kv_buffers=$b 2>&1 | grep -E "===|output tok/s|decode|probe:|roofline|rror" | grep -v "probe: done" | sed "s/^/kv_buffers=$b: /"
  echo "t=$SECONDS"
done 2>&1 | tee $OUT/nano_fp8_stages.log
left=$((L - SECONDS))
[ $left -gt 25 ] && timeout $left python -m pytest -q -m gpu tests/gpu/test_fp8_kernels_gpu.py -k "pipeline_depth" 2>&1 | tail -3 | tee $OUT/gpu_tests.log
echo "end $SECONDS"
