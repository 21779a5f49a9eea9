#!/bin/bash
# session 21 call 2: two micro-batches on two streams (overlap_probe); ncu of the FP8 decode kernel at batch 64
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
t0=$(date +%s)
timeout 240 python -m allmos.microbench.overlap_probe --out $OUT/overlap --batch 32,64,128,256 --context 1024 > $OUT/overlap.txt 2>&1; echo "overlap rc=$? $(( $(date +%s)-t0 ))s"; tail -12 $OUT/overlap.txt
which ncu && timeout 200 ncu --clock-control none -k regex:_decode_split_kernel --launch-count 4 --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats --section SourceCounters --section MemoryWorkloadAnalysis python -m allmos.microbench.kernel_bench_fp8 --batches 64 --context 2048 > $OUT/ncu_fp8_b64.txt 2>&1; echo "ncu rc=$? $(( $(date +%s)-t0 ))s"; grep -E "Kernel|_decode|Duration|Memory Throughput|DRAM Throughput|Stall|Warp Cycles|Issued|Achieved Occupancy|Registers|Block Limit|Shared Memory Config" $OUT/ncu_fp8_b64.txt | head -80
