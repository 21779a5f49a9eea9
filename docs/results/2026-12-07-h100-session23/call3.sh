#!/bin/bash
# Session 23, call 3 (nvidia-h100-x1): the fixed GPU cases. Tree: epilogue-gemms (8050328); calls/qkv: git archive of qkv-rope-rows (69d22dc).
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
S=$(date +%s); t(){ echo "[$(( $(date +%s) - S ))s] $*"; }
(cd calls/qkv && PYTHONPATH=/tmp/site:$PWD timeout 90 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/test_rows_qkv_rope_gpu.py > $OUT/qkv_rows_qkv_rope.log 2>&1); t qkv-rope-rows test_rows_qkv_rope_gpu: $(tail -1 $OUT/qkv_rows_qkv_rope.log)
for f in test_rows_qkv_rope_gpu test_gemm_epilogue_gpu; do
  timeout 100 python -m pytest -q -m gpu -p no:cacheprovider tests/gpu/$f.py > $OUT/epi_$f.log 2>&1; t epilogue-gemms $f: $(tail -1 $OUT/epi_$f.log)
done
