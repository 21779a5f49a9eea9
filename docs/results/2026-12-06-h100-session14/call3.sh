# Session 14, call 3: the wider workload on branch qkv-rope-on (new_tree) then main (this tree); nano_bench
# kv_cache_dtype=fp8 and everything off on new_tree.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
B=$PWD; N=$PWD/new_tree
W="workload.num_requests=384 workload.input_len_min=20 workload.input_len_max=2000 workload.output_len_min=1 workload.output_len_max=1500 workload.seed=123"
for t in $N $B; do cd $t; export PYTHONPATH=/tmp/site:$t
  echo "=== wider $t"; timeout 90 python run.py $W hydra.run.dir=/tmp/w$RANDOM 2>&1 | grep -E "output tok/s|roofline|probe:" | grep -v "probe: done"
done 2>&1 | tee $OUT/wider.log
cd $N; export PYTHONPATH=/tmp/site:$N
NAMES="kv_cache_fp8" JOB_TIMEOUT=75 bash scripts/gpu_nano_bench.sh /tmp/nano > $OUT/nano_fp8.log 2>&1; grep -E "===|output tok/s|probe:" $OUT/nano_fp8.log | grep -v "probe: done"
NAMES="all_off" JOB_TIMEOUT=150 bash scripts/gpu_nano_bench.sh /tmp/nano > $OUT/nano_off.log 2>&1; grep -E "===|output tok/s|probe:" $OUT/nano_off.log | grep -v "probe: done"
