#!/usr/bin/env bash
# Batch 1, one switch on against off in one device call: a warm-up step_time run (it compiles on a cold
# cache: over 40 s on an H100, 2026-12-06) and then ROUNDS rounds of step_time and workload=latency, the
# order alternating (on, off, then off, on, ...) so neither side always runs first.
# Usage: bash scripts/gpu_switch_ab.sh SWITCH ROUNDS [CONTEXT] [extra overrides...]
#   SWITCH: a boolean switch or plugin option, e.g. fused_graph_inputs or rope.fuse_qkv
set -u
switch=$1; rounds=$2; shift 2
context=512
if [[ ${1:-} =~ ^[0-9]+$ ]]; then context=$1; shift; fi
step() { timeout 150 python -m allmos.microbench.step_time --batch 1 --context "$context" --graphs true "$@" 2>&1 | tail -1; }
echo "=== warm-up"; step "$switch=true" "$@"
for round in $(seq 1 "$rounds"); do
  order="true false"; [ $((round % 2)) = 0 ] && order="false true"
  for value in $order; do
    echo "=== round $round: $switch=$value"
    step "$switch=$value" "$@"
    timeout 150 python run.py workload=latency "$switch=$value" "$@" hydra.run.dir="/tmp/switch_ab_${value}_$round" 2>&1 \
      | grep -E "TPOT median|p99:|probe:" | grep -v "probe: done"
  done
done
