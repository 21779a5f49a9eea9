# Session 17, call 2 (typed as the device command; tree at 821a02b): the FP8 decode's launch configurations on
# the H200, then the batch-1 decode step (issue 22's figure), twice.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1; export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader; date +%T
timeout 200 python -m allmos.microbench.kernel_bench_fp8 --batches 16,64,256 --tiles 64,128 --warps 4,8 --max-registers 0 --out $OUT/h200_fp8_sweep.json 2>&1 | tail -40; date +%T
for i in 1 2; do timeout 60 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true 2>&1 | tail -1; done; date +%T
# printed:
# cuda_graphs=true    batch 1 context 512: 0.723 ms per decode step (captured graph alone: 0.695 ms)
# cuda_graphs=true    batch 1 context 512: 0.722 ms per decode step (captured graph alone: 0.695 ms)
