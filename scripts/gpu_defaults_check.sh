#!/usr/bin/env bash
# Issue 18's GPU check: `python run.py` with no switches reaches the everything-on figure, measured in the
# same device call as the explicit everything-on command, alternating the two (ROUNDS times, default 2).
# Usage: bash scripts/gpu_defaults_check.sh [ROUNDS]      (nano_bench on qwen3-0.6b, ~1 min per run)
set -u
rounds=${1:-2}
runs=${RUNS:-/tmp/allmos-runs/defaults}
ON="attention=triton kv_store=triton rope=triton linear=triton sampler=triton cuda_graphs=true compile=true prefix_caching=true async_scheduling=true"
mkdir -p "$runs"
for i in $(seq 1 "$rounds"); do
  echo "=== round $i default: python run.py"
  python run.py hydra.run.dir="$runs/default_$i" 2>&1 | grep -E "output tok/s|switches|probe|FAILED"
  echo "=== round $i explicit: python run.py $ON"
  python run.py $ON hydra.run.dir="$runs/explicit_$i" 2>&1 | grep -E "output tok/s|switches|probe|FAILED"
done
python - "$runs" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/result.json")):
    r = json.loads(p.read_text())
    same = {k: v for k, v in r.get("switches", {}).items() if k in ("attention", "cuda_graphs", "compile")}
    print(f"{p.parent.name:12s} {r['status']:6s} {r.get('metrics', {}).get('output_tok_s', 0):10.1f} tok/s {same}")
PY
