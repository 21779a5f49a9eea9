#!/usr/bin/env bash
# Every gpu-marked test within a time budget, the named files first, their logs one after another in
# $OUT/gpu_tests.log (one file: the device brings back only so many files).
# Usage (on the device machine): bash scripts/gpu_tests.sh SECONDS [tests/gpu/FILE.py ...]
# Naming a file before `tests/` on one pytest line does not run it first (pytest runs it in its place in
# the folder, 2026-12-06), so each file is its own pytest run here: the named ones, then the rest of
# tests/gpu/ in name order, each stopped at the budget's end. A summary line per file goes to stdout and
# to $OUT/gpu_tests_summary.log; a file that had no time left says so.
set -u
budget=$1; shift
out=${OUT:-/tmp/out}
mkdir -p "$out"
end=$((SECONDS + budget))
files=("$@")
for f in tests/gpu/test_*.py; do
  [[ " ${files[*]} " == *" $f "* ]] || files+=("$f")
done
for f in "${files[@]}"; do
  name=$(basename "$f" .py)
  left=$((end - SECONDS))
  if [ "$left" -le 5 ]; then
    echo "$name: not run (no time left)" | tee -a "$out/gpu_tests_summary.log"
    continue
  fi
  log=$(mktemp)
  timeout "$left" python -m pytest -m gpu -q -p no:cacheprovider "$f" > "$log" 2>&1
  rc=$?
  { echo "===== $f (rc $rc)"; cat "$log"; } >> "$out/gpu_tests.log"
  last=$(grep -E "passed|failed|error|skipped|no tests ran" "$log" | tail -1)
  rm -f "$log"
  [ "$rc" = 124 ] && last="cut off at the budget's end; ${last:-nothing finished}"
  echo "$name: ${last:-rc $rc}" | tee -a "$out/gpu_tests_summary.log"
done
