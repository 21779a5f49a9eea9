# Session 19, call 2 (on an H200 if one comes; tree: branch fp8-two-kv-buffers): issue 21/22 figures
set -u
L=${LIMIT:-585}
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
timeout 100 python -m allmos.microbench.kernel_bench_fp8 --batches 16,64,256 --context 2048 --out $OUT/kb_default.json 2>&1 | grep -v Warn | tee $OUT/kb_default.txt
for name in kv_cache_fp8 all_on kv_cache_fp8_one_kv_buffer; do
  [ $SECONDS -lt $((L - 120)) ] || continue
  NAMES="$name" JOB_TIMEOUT=100 bash scripts/gpu_nano_bench.sh /tmp/n_$name 2>&1 | grep -E "===|output tok/s|decode|probe:|roofline|rror" | grep -v "probe: done"
done 2>&1 | tee $OUT/nano.log
[ $SECONDS -lt $((L - 60)) ] && timeout 60 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true 2>&1 | tail -2 | tee $OUT/step_b1.txt
echo "end $SECONDS"
