# Session 17, call 3 (typed as the device command; tree at 821a02b): where a batch-256 decode step's time goes
# with FP8 pages and with bf16 pages (context 1024), then the FP8 decode's tiles x stages x splits at 64 and 256.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1; export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader; date +%T
for d in fp8 auto; do timeout 100 python -m allmos.microbench.step_timeline --batch 256 --context 1024 --steps 10 --top 16 kv_cache_dtype=$d 2>&1 | grep -v Warn | head -22 | tee $OUT/timeline_b256_c1024_$d.txt; done; date +%T
timeout 100 python -m allmos.microbench.kernel_bench_fp8 --batches 64,256 --tiles 128 --stages 2,3 --splits 1,2 --out $OUT/h200_fp8_sweep2.json 2>&1 | tail -16; date +%T
