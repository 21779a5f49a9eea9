# Session 19, call 1 (tree: branch fp8-two-kv-buffers; the A/B names attention.decode_kv_buffers explicitly): one K/V buffer per decode program against two
set -u
L=${LIMIT:-585}
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
echo "kb $SECONDS"
timeout 150 python -m allmos.microbench.kernel_bench_fp8 --batches 16,64,256 --context 2048 --tiles ${TILES:-64,128} --stages 2,5 --out $OUT/kb_stages_c2048.json 2>&1 | grep -v Warn | tee $OUT/kb_stages_c2048.txt
echo "nano $SECONDS"
for r in 1 2; do
  for b in 2 1; do
    [ $SECONDS -lt $((L - 165)) ] || continue
    extra="attention.decode_kv_buffers=$b"
    NAMES="kv_cache_fp8" JOB_TIMEOUT=100 bash scripts/gpu_nano_bench.sh /tmp/n_${b}_$r $extra 2>&1 | grep -E "===|output tok/s|decode|probe:|roofline|rror" | grep -v "probe: done" | sed "s/^/kv_buffers=$b r$r: /"
    echo "t=$SECONDS"
  done
done 2>&1 | tee $OUT/nano_fp8_stages.log
[ $SECONDS -lt $((L - 155)) ] && NAMES="all_on" JOB_TIMEOUT=100 bash scripts/gpu_nano_bench.sh /tmp/n_bf16 2>&1 | grep -E "===|output tok/s|decode|probe:|roofline|rror" | grep -v "probe: done" | tee $OUT/nano_bf16.log
echo "bf16 stages $SECONDS"
[ $SECONDS -lt $((L - 85)) ] && timeout 50 python calls/bf16_stages.py 2>&1 | grep -v Warn | tee $OUT/bf16_stages.txt
left=$((L - SECONDS))
[ $left -gt 30 ] && timeout $left python -m pytest -q -m gpu tests/gpu/test_fp8_kernels_gpu.py tests/gpu/test_probe_fp8_gpu.py tests/gpu/test_gpu_engine.py -k "fp8 or pipeline_depth or head_major" 2>&1 | tail -5 | tee $OUT/gpu_tests.log
echo "end $SECONDS"
