#!/usr/bin/env bash
# Every experiment of the paper in one command, each swept into its own folder under one parent,
# then a report per experiment:
#
#   bash experiments/paper.sh [--out DIR] [--dry-run] [override ...]
#
#   DIR/ablation_cumulative/<job>/result.json ...   DIR/ablation_cumulative/report/report.md ...
#   DIR/ablation_leave_one_out/ ...  DIR/attention_backends/ ...  DIR/prefix_caching/ ...  DIR/latency/
#   DIR/serving_rate_sweep/ ...
#   DIR/schedulers/ ...
#
# DIR defaults to multirun/paper/<date_time>. Overrides go to every sweep, e.g. `model=...`,
# `resume=true` (with --out of an interrupted run: only jobs without a good record run again) or
# `hydra/launcher=submitit_slurm`. Hydra's basic sweeper only sweeps grids and one command runs one
# grid, so the union of seven grids is seven commands; a failed job never stops its sweep, and a sweep
# that fails does not stop the next one (the exit status says whether all went through).
set -u

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-python}
EXPERIMENTS=(ablation_cumulative ablation_leave_one_out attention_backends prefix_caching latency serving_rate_sweep schedulers)

OUT="multirun/paper/$(date +%Y-%m-%d_%H-%M-%S)"
DRY=0
OVERRIDES=()
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --out=*) OUT=${1#--out=}; shift ;;
    --dry-run) DRY=1; shift ;;
    -h|--help) sed -n '2,15p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) OVERRIDES+=("$1"); shift ;;
  esac
done

run() {
  echo "+ $*"
  [ "$DRY" = 1 ] || "$@"
}

status=0
for name in "${EXPERIMENTS[@]}"; do
  dir="$OUT/$name"
  run "$PYTHON" "$ROOT/run.py" -m "+experiment=$name" "hydra.sweep.dir=$dir" ${OVERRIDES[@]+"${OVERRIDES[@]}"} || status=1
  # each experiment declares its kind and baseline point (experiment.kind/baseline): no --baseline here
  run "$PYTHON" "$ROOT/analysis/report.py" "$dir" || status=1
  if [ "$name" = latency ]; then  # per-token latency too (lower is better: speedup = baseline / this)
    run "$PYTHON" "$ROOT/analysis/report.py" "$dir" --metric tpot_ms_median --out "$dir/report_tpot" || status=1
  fi
done
echo "paper: results and reports under $OUT"
exit $status
