#!/usr/bin/env bash
# Batch-1 decode, this tree against a baseline tree, in one device call: the decode step and its captured
# graph (step_time), the layer chain (layer_chain), and workload=latency with its probe, alternating trees.
# Usage: bash scripts/gpu_step_ab.sh BASE_TREE [CONTEXT] [extra overrides for step_time and run.py...]
#   BASE_TREE: e.g. `mkdir base_tree && git archive <commit> | tar -x -C base_tree` (untracked, so it
#   travels to the device with the working tree). A base tree without layer_chain skips that line.
set -u
base=$(cd "$1" && pwd); shift
context=512
if [[ ${1:-} =~ ^[0-9]+$ ]]; then context=$1; shift; fi
here=$PWD
site=${SITE:-/tmp/site}
for side in new base; do
  tree=$here; [ "$side" = base ] && tree=$base
  echo "=== $side"
  (cd "$tree" && export PYTHONPATH="$site:$tree"
    timeout 150 python -m allmos.microbench.step_time --batch 1 --context "$context" --graphs true "$@" 2>&1 | tail -1
    [ -f allmos/microbench/layer_chain.py ] && timeout 90 python -m allmos.microbench.layer_chain --context "$context" 2>&1 | tail -1
    timeout 150 python run.py workload=latency "$@" hydra.run.dir="/tmp/step_ab_latency_$side" 2>&1 \
      | grep -E "TPOT median|p99:|probe:" | grep -v "probe: done")
done
