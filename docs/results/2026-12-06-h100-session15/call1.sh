# Session 15, call 1 on an H100: the GPU tests that have not run with fused_graph_inputs on (main); then
# new_tree (branch wide-gemm, uncommitted snapshot): its GPU test, step_time at batch 128 with
# linear.wide_gemm true/false/true; then the TMA-GEMM config exploration (calls/tma_probe.py) against cuBLAS.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
M=$PWD
export PYTHONPATH=/tmp/site:$M
date +%T
bash scripts/gpu_tests.sh 170 tests/gpu/test_gpu_engine.py tests/gpu/test_whole_step_graphs_gpu.py tests/gpu/test_serving_gpu.py tests/gpu/test_tensor_parallel_gpu.py
date +%T
N=$M/new_tree; cd $N; export PYTHONPATH=/tmp/site:$N
(timeout 90 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_wide_linear_gpu.py 2>&1 | tail -15) > $OUT/wide_tests.log; tail -3 $OUT/wide_tests.log
for v in true false true; do
  echo "== batch 128 linear.wide_gemm=$v"; timeout 70 python -m allmos.microbench.step_time --batch 128 --context 512 --graphs true linear.wide_gemm=$v 2>&1 | tail -1
done 2>&1 | tee $OUT/wide_step_ab.log
date +%T
cd $M; export PYTHONPATH=/tmp/site:$M
timeout 140 python calls/tma_probe.py 128,64,256 $OUT/tma_probe.json 2>&1 | grep -v "^SKIP" | tee $OUT/tma_probe.txt | tail -20
date +%T
