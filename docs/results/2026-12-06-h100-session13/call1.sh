# Session 13, one call: rope.fuse_qkv (new_tree = branch qkv-rope; this tree = main, the base). Batch-1 step
# and workload=latency with it on and off, nano_bench bf16 and fp8 (new tree, defaults), then every gpu test
# of the new tree in the time left.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
N=$PWD/new_tree; B=$PWD; cd $N; export PYTHONPATH=/tmp/site:$N
ON="rope=triton rope.fuse_qkv=true"
for v in on off on off; do extra=""; [ $v = on ] && extra=$ON
  echo "== step $v"; timeout 70 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true $extra 2>&1 | tail -1
done 2>&1 | tee $OUT/step_ab.log
for v in on off; do extra=""; [ $v = on ] && extra="rope.fuse_qkv=true"
  echo "== latency $v"; timeout 60 python run.py workload=latency $extra hydra.run.dir=/tmp/lat_$v 2>&1 | grep -E "TPOT|probe:|rope in qkv" | grep -v "probe: done" | head -4
done 2>&1 | tee $OUT/latency_ab.log
NAMES="all_on kv_cache_fp8" JOB_TIMEOUT=80 bash scripts/gpu_nano_bench.sh /tmp/nano > $OUT/nano.log 2>&1; grep -E "===|output tok/s|roofline|probe:" $OUT/nano.log | grep -v "probe: done"
left=$((575 - SECONDS)); echo "suite gets ${left}s"
(timeout $left python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_qkv_rope_gpu.py tests/ --durations=12 2>&1 | tail -45) > $OUT/gpu_tests.log; tail -3 $OUT/gpu_tests.log
