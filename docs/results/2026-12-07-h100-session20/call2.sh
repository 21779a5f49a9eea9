# Session 20, call 2: where a decode step's time goes on the card that answers (bf16 and FP8 pages, batch 1 to 256, context 1024)
set -u
L=${LIMIT:-280}
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
timeout 60 python -m allmos.microbench.step_time --batch 1 --context 512 --graphs true 2>&1 | tail -2 | tee $OUT/step_b1.txt
timeout 110 python -m allmos.microbench.step_timeline --batch 1 16 64 256 --context 1024 --steps 10 2>&1 | grep -v -i warn | tee $OUT/timeline_bf16.txt
echo "fp8 $SECONDS"
left=$((L - SECONDS))
[ $left -gt 40 ] && timeout $left python -m allmos.microbench.step_timeline --batch 1 16 64 --context 1024 --steps 10 kv_cache_dtype=fp8 2>&1 | grep -v -i warn | tee $OUT/timeline_fp8.txt
echo "end $SECONDS"
