set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1; export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
# 1. fp8 decode register cap: kernel, then nano_bench (this tree) without and with it
(timeout 100 python -m allmos.microbench.kernel_bench_fp8 --max-registers 168 --batches 16,64,256 --out $OUT/fp8regs 2>&1 | tail -30) > $OUT/c1_fp8_regs.log; cat $OUT/c1_fp8_regs.log
for cap in none 168; do extra=""; [ $cap != none ] && extra="attention.decode_max_registers=$cap"
  echo "== fp8 cap $cap"; timeout 100 python run.py kv_cache_dtype=fp8 $extra hydra.run.dir=/tmp/fp8_$cap 2>&1 | grep -E "output tok/s|TPOT median|probe:|roofline" | grep -v "probe: done" | head -5
done 2>&1 | tee $OUT/c1_fp8_nano.log
# 2. single-pass-norm (this tree) against main (base_tree): batch-1 step and the layer chain (+ rope kernel)
for t in new base; do d=$PWD; [ $t = base ] && d=$PWD/base_tree
  cp calls/layer_chain_rope.py $d/allmos/microbench/layer_chain_rope.py
  echo "== $t"; (cd $d && export PYTHONPATH=/tmp/site:$d
  timeout 100 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true 2>&1 | tail -1
  timeout 60 python -m allmos.microbench.layer_chain --context 512 2>&1 | tail -1
  timeout 60 python -m allmos.microbench.layer_chain_rope --context 512 2>&1 | tail -1)
done 2>&1 | tee $OUT/c1_step_ab.log
# 3. GPU tests: the branch's GEMVs, the session-11 tools and FP8 kernels (register cap)
(timeout 150 python -m pytest -q -m gpu tests/gpu/test_skinny_linear_gpu.py tests/gpu/test_fp8_kernels_gpu.py tests/gpu/test_layer_chain_gpu.py 2>&1 | tail -6) > $OUT/c1_tests.log; tail -3 $OUT/c1_tests.log
# 4. workload=latency, both trees
for t in new base; do d=$PWD; [ $t = base ] && d=$PWD/base_tree
  echo "== $t latency"; (cd $d && PYTHONPATH=/tmp/site:$d timeout 90 python run.py workload=latency hydra.run.dir=/tmp/lat_$t 2>&1 | grep -E "TPOT|ITL|probe:" | grep -v "probe: done" | head -4)
done 2>&1 | tee $OUT/c1_latency.log
