#!/usr/bin/env bash
# Wall time of the default 11-gamma, 3-fold sweep on COMPAS with --n-jobs 1 and --n-jobs 2,
# and a check that both wrote the same runs. From the repository root, after `pip install -e .`:
#     bash benchmarks/sweep_speed.sh [WORKDIR]
set -euo pipefail
work=${1:-/tmp/sqnn-sweep-speed}
rm -rf "$work"; mkdir -p "$work"
for jobs in 1 2; do
  start=$(date +%s.%N)
  sqnn sweep-gamma sample_data/compas.csv --sensitive race --out "$work/jobs$jobs" --n-jobs "$jobs" --plot \
    > "$work/jobs$jobs.json" 2> "$work/jobs$jobs.log" --json
  end=$(date +%s.%N)
  echo "n_jobs=$jobs wall_seconds=$(python -c "print(round($end - $start, 1))")"
done
python - "$work" <<'PY'
import json, sys
work = sys.argv[1]
def runs(name):
    return {(r["gamma"], r["fold"]): r["metrics"] for r in map(json.loads, open(f"{work}/{name}/runs.jsonl"))}
print("identical runs:", runs("jobs1") == runs("jobs2"))
PY
