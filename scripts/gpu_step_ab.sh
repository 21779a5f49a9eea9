#!/usr/bin/env bash
# Batch-1 decode, this tree against a baseline tree, in one device call: the decode step and its captured
# graph (step_time), the layer chain (layer_chain), and workload=latency with its probe.
# Usage: bash scripts/gpu_step_ab.sh BASE_TREE [CONTEXT] [extra overrides for step_time and run.py...]
#   BASE_TREE: e.g. `mkdir base_tree && git archive <commit> | tar -x -C base_tree` (untracked, so it
#   travels to the device with the working tree). A base tree without layer_chain skips that line.
# workload=latency runs new, base, base, new: in two calls (2026-12-06) the TTFT median was 18-19 ms for
# whichever tree ran first and 33 ms for the one after it, with no prefill change between them.
set -u
base=$(cd "$1" && pwd); shift
context=512
if [[ ${1:-} =~ ^[0-9]+$ ]]; then context=$1; shift; fi
here=$PWD
site=${SITE:-/tmp/site}
tree_of() { if [ "$1" = base ]; then echo "$base"; else echo "$here"; fi; }
for side in new base; do
  tree=$(tree_of $side)
  echo "=== $side"
  (cd "$tree" && export PYTHONPATH="$site:$tree"
    timeout 150 python -m allmos.microbench.step_time --batch 1 --context "$context" --graphs true "$@" 2>&1 | tail -1
    [ -f allmos/microbench/layer_chain.py ] && timeout 90 python -m allmos.microbench.layer_chain --context "$context" 2>&1 | tail -1)
done
run=0
for side in new base base new; do
  tree=$(tree_of $side); run=$((run + 1))
  echo "=== $side latency (run $run of 4)"
  (cd "$tree" && export PYTHONPATH="$site:$tree"
    timeout 150 python run.py workload=latency "$@" hydra.run.dir="/tmp/step_ab_latency_${side}_$run" 2>&1 \
      | grep -E "TPOT median|p99:|probe:" | grep -v "probe: done")
done
