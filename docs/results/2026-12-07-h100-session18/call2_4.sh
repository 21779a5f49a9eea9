# Session 18, calls 2-4 (typed as the device command, same warm nvidia-h100-x1 as call 1; tree = branch
# fp8-v-pages-dim-major at 51b65c8, old_tree = git archive of main at c0024ac).
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
# call 2: where a batch-256 FP8 decode step goes, branch then main
M=$PWD; for t in branch main; do d=$M; [ $t = main ] && d=$M/old_tree; (cd $d && PYTHONPATH=/tmp/site:$d timeout 110 python -m allmos.microbench.step_timeline --batch 256 --context 1024 --steps 10 --top 16 kv_cache_dtype=fp8 2>&1 | grep -v Warn | head -24 | tee $OUT/timeline_$t.txt); done
# call 3 (branch): the dim-major decode at context 1024
export PYTHONPATH=/tmp/site:$PWD
python -m allmos.microbench.kernel_bench_fp8 --v-dim-major --batches 64,256 --context 1024
python -m allmos.microbench.kernel_bench_fp8 --v-dim-major --batches 64,256 --context 1024 --tiles 64,128 --max-registers 0,128
# call 4 (main, token-major V): tiles x register caps at contexts 1024 and 2048
cd old_tree; export PYTHONPATH=/tmp/site:$PWD; for c in 1024 2048; do python -m allmos.microbench.kernel_bench_fp8 --batches 16,64,256 --context $c --tiles 64,128 --max-registers 0,128 --out $OUT/main_caps_$c.json; done
