#!/usr/bin/env bash
# One experiment's points spread over the visible GPUs, one sweep per GPU, all at once (each job
# still runs alone on its GPU, in a fresh process). For a device call that must fit a time limit.
#   bash scripts/gpu_sweep_split.sh OUT_DIR EXPERIMENT GROUP POINT,POINT,... [override ...]
# e.g. bash scripts/gpu_sweep_split.sh /tmp/loo ablation_leave_one_out leave_one_out all_on,no_rope trial=0
# Records land in OUT_DIR/gpu<i>/<job>/; analysis/report.py OUT_DIR reads them all.
set -u
out=$1 experiment=$2 group=$3 points=$4
shift 4
mkdir -p "$out"
gpus=$(python -c "import torch; print(max(1, torch.cuda.device_count()))")
IFS=, read -r -a all <<< "$points"
pids=()
for ((g = 0; g < gpus; g++)); do
  mine=()
  for ((i = g; i < ${#all[@]}; i += gpus)); do mine+=("${all[i]}"); done
  [ ${#mine[@]} -eq 0 ] && continue
  subset=$(IFS=,; echo "${mine[*]}")
  echo "GPU $g: $subset"
  CUDA_VISIBLE_DEVICES=$g python run.py -m +experiment="$experiment" "+$group=$subset" "$@" \
    hydra.sweep.dir="$out/gpu$g" > "$out.gpu$g.log" 2>&1 &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
