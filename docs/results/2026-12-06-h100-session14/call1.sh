# Session 14, call 1 (new_tree = git archive of branch qkv-rope-on: rope.fuse_qkv on by default):
# the qkv-rope GPU tests first, then batch-1 step and workload=latency alternating on/off (both named),
# then nano_bench everything on (the fusion on) and no_qkv_rope.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
N=$PWD/new_tree; cd $N; export PYTHONPATH=/tmp/site:$N
(timeout 150 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_qkv_rope_gpu.py 2>&1 | tail -30) > $OUT/qkv_kernel_tests.log; tail -2 $OUT/qkv_kernel_tests.log
(timeout 150 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_gpu_engine.py -k "qkv_rope or fuse_rope or programmatic" 2>&1 | tail -15) > $OUT/qkv_engine_tests.log; tail -2 $OUT/qkv_engine_tests.log
for v in true false true false; do
  echo "== step rope.fuse_qkv=$v"; timeout 60 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true rope=triton rope.fuse_qkv=$v 2>&1 | tail -1
done 2>&1 | tee $OUT/step_ab.log
for v in false true true false; do
  echo "== latency rope.fuse_qkv=$v"; timeout 50 python run.py workload=latency rope.fuse_qkv=$v hydra.run.dir=/tmp/lat_$v$RANDOM 2>&1 | grep -E "TPOT|ITL|probe:" | grep -v "probe: done" | head -3
done 2>&1 | tee $OUT/latency_ab.log
NAMES="all_on no_qkv_rope" JOB_TIMEOUT=75 bash scripts/gpu_nano_bench.sh /tmp/nano > $OUT/nano.log 2>&1; grep -E "===|output tok/s|probe:" $OUT/nano.log | grep -v "probe: done"
