# Session 15, call 2 (main): the GPU engine tests with fused_graph_inputs on (cut off in call 1), then one
# more round of fused_graph_inputs on vs off at batch 1.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
date +%T
bash scripts/gpu_tests.sh 330 tests/gpu/test_gpu_engine.py tests/gpu/test_whole_step_graphs_gpu.py tests/gpu/test_serving_gpu.py 2>&1 | head -3
date +%T
timeout 200 bash scripts/gpu_switch_ab.sh fused_graph_inputs 1 2>&1 | tee $OUT/switch_ab.log
date +%T
