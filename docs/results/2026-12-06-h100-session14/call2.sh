# Session 14, call 2: every GPU test file of the branch, one pytest run each, within the call.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
N=$PWD/new_tree; cd $N; export PYTHONPATH=/tmp/site:$N
bash scripts/gpu_tests.sh 560 tests/gpu/test_qkv_rope_gpu.py tests/gpu/test_qk_rope_kernel_gpu.py tests/gpu/test_decode_rope_gpu.py tests/gpu/test_fp8_kernels_gpu.py tests/gpu/test_skinny_linear_gpu.py tests/gpu/test_whole_step_graphs_gpu.py
