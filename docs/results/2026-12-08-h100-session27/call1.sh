#!/bin/bash
# Session 27, last short call: the side-stream L2 probe at context 0 and 512, then the FA3 reference.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
for c in 0 512; do timeout 60 python -m allmos.microbench.l2_side_stream --context $c --out $OUT/side$c > $OUT/side$c.txt 2>&1; t side$c; grep -v -i warn $OUT/side$c.txt | tail -9; done
timeout 60 python -m allmos.microbench.fa3_decode_bench --batches 64,256 --out $OUT/fa3.json > $OUT/fa3.txt 2>&1; t fa3; grep -v -i warn $OUT/fa3.txt | tail -10
# Call 2, right after on the warm machine (3 passed, 6 deselected in 26.5 s):
#   python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1; export PYTHONPATH=/tmp/site:$PWD
#   timeout 85 python -m pytest -q -p no:cacheprovider tests/gpu/test_fa3_decode_bench_gpu.py tests/gpu/test_chain_probes_gpu.py -k "fa3 or l2_side"
