#!/bin/bash
# session 21 call 3: ncu of the FP8 decode kernel (engine launch) at batch 64 and 256, context 2048
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
export PYTHONPATH=/tmp/site:$PWD
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
t0=$(date +%s)
for b in 64 256; do
timeout 150 ncu --clock-control none -k regex:_decode_split_kernel --launch-count 1 --section SpeedOfLight --section WarpStateStats --section Occupancy --section LaunchStats --section SourceCounters --section MemoryWorkloadAnalysis --section ComputeWorkloadAnalysis --section InstructionStats --metrics regex:smsp__average_warps_issue_stalled_.*_per_issue_active.ratio,regex:smsp__inst_executed_op_.*sum,smsp__inst_executed.sum,sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active,l1tex__data_pipe_lsu_wavefronts_mem_shared.sum python -m allmos.microbench.kernel_bench_fp8 --batches $b --context 2048 --tiles 128 --stages 2 > $OUT/ncu_fp8_b$b.txt 2>&1; echo "ncu b$b rc=$? $(( $(date +%s)-t0 ))s"
done
for b in 64 256; do grep -E "_decode|Duration|DRAM Throughput|Warp Cycles Per Issued|Registers Per|Achieved Occupancy|issue_stalled|Issue Slots Busy|Executed Ipc|hmma|mem_shared|inst_executed.sum" $OUT/ncu_fp8_b$b.txt | awk '$NF != "0" && $NF != "0.00"' | head -60; done
