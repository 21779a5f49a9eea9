#!/usr/bin/env bash
# One device call after a structural change: nano_bench everything on, this tree vs a base tree (the A/B of
# scripts/gpu_ab_bench.sh), then `python run.py` with no switches (the defaults must be everything on), a
# summary of the records, then every gpu-marked test. Logs and records go to $OUT.
# Usage: bash scripts/gpu_release_check.sh BASE_TREE [ROUNDS]   (BASE_TREE: see gpu_ab_bench.sh)
set -u
base=$1; rounds=${2:-1}; out=${OUT:-/tmp/out}; runs=/tmp/allmos-release
mkdir -p "$out" "$runs"
export PYTHONUNBUFFERED=1 JOB_TIMEOUT=${JOB_TIMEOUT:-170}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$out/gpu.txt"
bash scripts/gpu_ab_bench.sh "$base" "$rounds" "$runs" 2>&1 | tee "$out/ab.log"
timeout "$JOB_TIMEOUT" python run.py hydra.run.dir="$runs/default_1" > "$out/default.log" 2>&1
tail -8 "$out/default.log"
python - "$runs" > "$out/summary.txt" <<'PY'
import json, pathlib, sys
for p in sorted(pathlib.Path(sys.argv[1]).glob("*/result.json")):
    r = json.loads(p.read_text()); m = r.get("metrics") or {}; c = r.get("correctness") or {}
    s = r.get("switches") or {}
    fields = ["output_tok_s", "decode_s", "prefill_s", "roofline"]
    print(p.parent.name, r["status"], *(f"{k}={m.get(k)}" for k in fields), "probe=" + str(c.get("verdict", c.get("passed"))),
          *(f"{k}={s.get(k)}" for k in ("attention", "cuda_graphs", "linear", "async_scheduling")), r.get("error") or "")
PY
cat "$out/summary.txt"
timeout "${TEST_TIMEOUT:-290}" python -m pytest -m gpu -q -p no:cacheprovider tests/ > "$out/gpu_tests.log" 2>&1
tail -25 "$out/gpu_tests.log"
tar czf "$out/records.tgz" -C "$runs" .
