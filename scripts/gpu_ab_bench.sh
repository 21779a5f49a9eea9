#!/usr/bin/env bash
# nano_bench everything on, alternating this tree and a baseline tree, in one device call: the ratio
# comes from one machine, and alternating spreads its drift over both.
# Usage: bash scripts/gpu_ab_bench.sh BASE_TREE ROUNDS RUNS_DIR [extra overrides...]
#   BASE_TREE: e.g. `mkdir base_tree && git archive <commit> | tar -x -C base_tree` (untracked, so it
#   travels to the device with the working tree).
set -u
base=$(cd "$1" && pwd); rounds=$2; runs=$3; shift 3
here=$PWD
# Spelled out on purpose: a base tree older than the everything-on defaults would otherwise run all off.
ON="attention=triton kv_store=triton rope=triton sampler=triton linear=triton cuda_graphs=true compile=true prefix_caching=true async_scheduling=true"
site=${SITE:-/tmp/site}
for i in $(seq 1 "$rounds"); do
  for side in new base; do
    tree=$here; [ "$side" = base ] && tree=$base
    echo "=== round $i $side"
    (cd "$tree" && PYTHONPATH="$site:$tree" timeout "${JOB_TIMEOUT:-240}" python run.py $ON "$@" \
      hydra.run.dir="$runs/${side}_$i" 2>&1 | grep -E "tok/s|FAILED|Error" | head -3)
  done
done
