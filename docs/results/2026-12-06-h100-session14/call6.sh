# Session 14, call 6 (new_tree = branch graph-inputs): fused_graph_inputs' GPU test, then the batch-1 step
# and workload=latency with it on and off, alternating.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
N=$PWD/new_tree; cd $N; export PYTHONPATH=/tmp/site:$N
(timeout 70 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_whole_step_graphs_gpu.py 2>&1 | tail -15) > $OUT/graph_tests.log; tail -1 $OUT/graph_tests.log
for v in true false true false; do
  echo "== step fused_graph_inputs=$v"; timeout 40 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true fused_graph_inputs=$v 2>&1 | tail -1
done 2>&1 | tee $OUT/step_ab.log
for v in false true true false; do
  echo "== latency fused_graph_inputs=$v"; timeout 35 python run.py workload=latency fused_graph_inputs=$v hydra.run.dir=/tmp/lat_$v$RANDOM 2>&1 | grep -E "TPOT|ITL|probe:" | grep -v "probe: done" | head -3
done 2>&1 | tee $OUT/latency_ab.log
