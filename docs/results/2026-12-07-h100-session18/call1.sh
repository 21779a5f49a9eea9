# Session 18, combined first call (device starts were scarce): working tree = branch fp8-v-pages-dim-major
# (FP8 V pages stored dim-major); old_tree = git archive of main (token-major V pages).
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
M=$PWD
export PYTHONPATH=/tmp/site:$M
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
echo "start $SECONDS"
timeout 100 python -m pytest -q -m gpu tests/gpu/test_fp8_kernels_gpu.py 2>&1 | tail -6 | tee $OUT/fp8_kernel_gpu_tests.log
echo "kb $SECONDS"
timeout 80 python -m allmos.microbench.kernel_bench_fp8 --v-dim-major --batches 16,64,256 --out $OUT/kb_v_dim_major.json 2>&1 | tail -8 | tee $OUT/kb_v_dim_major.txt
echo "nano $SECONDS"
for r in 1 2; do for t in branch main; do
  [ $SECONDS -lt 470 ] || continue
  d=$M; [ $t = main ] && d=$M/old_tree
  (cd $d && PYTHONPATH=/tmp/site:$d NAMES="kv_cache_fp8" JOB_TIMEOUT=100 bash scripts/gpu_nano_bench.sh /tmp/n_${t}_$r 2>&1 | grep -E "===|output tok/s|decode|probe:|roofline|rror" | grep -v "probe: done") | sed "s/^/$t: /"
  echo "t=$SECONDS"
done; done 2>&1 | tee $OUT/nano_fp8_v_layout_ab.log
left=$((585 - SECONDS))
if [ $left -gt 40 ]; then
  timeout $left python -m pytest -q -m gpu tests/gpu/test_qkv_rope_gpu.py tests/gpu/test_triton_kernels_gpu.py -k "fp8 or store" 2>&1 | tail -6 | tee $OUT/stores_gpu_tests.log
fi
echo "end $SECONDS"
