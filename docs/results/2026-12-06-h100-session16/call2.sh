# Session 16, call 2 (H100 or H200): grid-barrier cost in a persistent Triton kernel; the FP8 decode kernel's
# launch configs; ncu of the decode kernel on bf16 and fp8 pages (batch 64, 256; context 2048).
set -u
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl >/dev/null 2>&1
M=$PWD
export PYTHONPATH=/tmp/site:$M
nvidia-smi --query-gpu=name --format=csv,noheader | tee $OUT/gpu.txt
date +%T
timeout 90 python calls/barrier_probe.py 2>&1 | tee $OUT/barrier_probe.txt
date +%T
timeout 170 python calls/fp8_probe.py sweep $OUT/fp8_sweep.json 2>&1 | tee $OUT/fp8_sweep.txt
date +%T
NCU=$(command -v ncu || ls /opt/nvidia/nsight-compute/*/ncu | head -1)
for b in 256 64; do for d in fp8 auto; do
  echo "=== ncu batch $b $d"
  timeout 75 $NCU --clock-control none -k regex:_decode_split_kernel --launch-skip 3 --launch-count 1 \
    --section SpeedOfLight --section MemoryWorkloadAnalysis --section Occupancy --section LaunchStats \
    --section WarpStateStats --section SchedulerStats python calls/fp8_probe.py ncu $b $d > $OUT/ncu_${b}_${d}.txt 2>&1
  grep -E "Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Stall|Warp Cycles Per Issued|Eligible Warps|Issued Warp|Theoretical Occ|Block Limit" $OUT/ncu_${b}_${d}.txt | head -30
done; done
date +%T
# nano_bench fp8: the default against the fastest sweep config expressible as engine options (4 warps, 2 stages)
BEST=$(python - <<'PY'
import json, os
rows = [r for r in json.load(open(os.environ["OUT"] + "/fp8_sweep.json"))["rows"] if r["dtype"] == "fp8" and "num_warps" in r]
ok = [r for r in rows if r["num_warps"] == 4 and r["num_stages"] == 2]
def total(key):
    return sum(r["us"] for r in ok if (r["block_n"], r["max_registers"]) == key and r["batch"] in (64, 256))
keys = {(r["block_n"], r["max_registers"]) for r in ok}
bn, cap = min(keys, key=total)
print(" ".join(([f"attention.decode_block_n={bn}"] if bn else []) + ([f"attention.decode_max_registers={cap}"] if cap is not None else [])))
PY
)
echo "best fp8 config for nano: [$BEST] at ${SECONDS}s"
if [ -n "$BEST" ] && [ $SECONDS -lt 360 ]; then
  for v in default best; do
    X=""; [ $v = best ] && X="$BEST"
    timeout 110 python run.py kv_cache_dtype=fp8 $X hydra.run.dir=/tmp/nano_fp8_$v 2>&1 | grep -v "generate:" | grep -E "output tok/s|probe:|roofline" | sed "s/^/$v: /"
  done | tee $OUT/fp8_nano_ab.log
fi
date +%T
