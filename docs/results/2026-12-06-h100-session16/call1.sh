# Session 16, call 1 on an H100: cuBLAS vs cuBLASLt (TORCH_BLAS_PREFER_CUBLASLT=1) for the torch GEMM path at
# 16..256 rows (probe), then step_time at batch 128 and nano_bench everything on, each with and without.
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
M=$PWD
export PYTHONPATH=/tmp/site:$M
date +%T
timeout 150 python calls/blas_probe.py 16,32,48,64,96,128,192,256 $OUT/blas_probe.json 2>&1 | tee $OUT/blas_probe.txt
date +%T
for lt in 0 1 0 1; do
  echo "== batch 128 TORCH_BLAS_PREFER_CUBLASLT=$lt"
  TORCH_BLAS_PREFER_CUBLASLT=$lt timeout 60 python -m allmos.microbench.step_time --batch 128 --context 512 --graphs true 2>&1 | tail -1
done 2>&1 | tee $OUT/blas_step_ab.log
date +%T
for lt in 0 1; do
  TORCH_BLAS_PREFER_CUBLASLT=$lt NAMES="all_on" JOB_TIMEOUT=110 bash scripts/gpu_nano_bench.sh /tmp/nano_lt$lt > $OUT/blas_nano_lt$lt.log 2>&1
  echo "== nano all_on TORCH_BLAS_PREFER_CUBLASLT=$lt"; grep -E "output tok/s|probe:|roofline" $OUT/blas_nano_lt$lt.log | grep -v "probe: done"
done 2>&1 | tee $OUT/blas_nano_ab.log
date +%T
