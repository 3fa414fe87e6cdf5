#!/usr/bin/env bash
# `sqnn train --max-dp 0.05` end to end on the three sample datasets: the gamma the search
# chooses on inner folds of the training part, its validation figures, and the held-out DP
# and AUC of the model trained at it, with the wall time. Run from the repository root;
# writes into a temporary directory and prints one JSON line per dataset.
set -u
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run() {
  local name=$1; shift
  local started=$(date +%s.%N)
  sqnn train "$@" --max-dp 0.05 --test-size 0.3 --n-jobs 2 --out "$work/$name" --json > "$work/$name.json" 2> "$work/$name.log"
  local code=$?
  local seconds=$(echo "$(date +%s.%N) - $started" | bc)
  python - "$name" "$code" "$seconds" "$work/$name.json" <<'PY'
import json, sys
name, code, seconds, path = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
out = json.load(open(path))
search = out["gamma_search"]
gamma = search["chosen_gamma"]
row = next((r for r in search["validation"] if r["gamma"] == gamma), None)
test = out.get("test_metrics") or {}
print(json.dumps({
    "dataset": name, "exit": code, "seconds": round(seconds, 1), "chosen_gamma": gamma,
    "closest_gamma": search["closest_gamma"],
    "validation_auc": row and round(row["auc_mean"], 4), "validation_dp": row and round(row["dp_difference_mean"], 4),
    "held_out_auc": test.get("auc") and round(test["auc"], 4), "held_out_dp": test.get("dp_difference") and round(test["dp_difference"], 4),
}))
PY
}
run compas sample_data/compas.csv --sensitive race
run adult sample_data/adult.csv.gz --target income --sensitive sex
run bank sample_data/bank.csv.gz --sensitive age_group --drop duration --drop age
