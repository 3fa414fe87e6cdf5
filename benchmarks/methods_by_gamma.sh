#!/usr/bin/env bash
# AUC, GPA (held-out) and the joint I(T;S) of the binary layer (audit, held-out rows) for
# --method bernoulli and --method joint at gamma 0, 0.5 and 0.9, on COMPAS and Adult.
# Usage, from the repository root after `pip install -e .`:
#     bash benchmarks/methods_by_gamma.sh [WORKDIR]
# Prints one tab-separated line per (dataset, method, gamma).
set -euo pipefail
work=${1:-/tmp/sqnn-methods}
mkdir -p "$work"
sqnn split sample_data/compas.csv --train "$work/compas-train.csv" --test "$work/compas-test.csv" --overwrite 2>/dev/null
sqnn split sample_data/adult.csv.gz --train "$work/adult-train.csv.gz" --test "$work/adult-test.csv.gz" --overwrite 2>/dev/null
printf 'dataset\tmethod\tgamma\tauc\tgpa\tmi_joint_bits\tmi_estimator\ts_per_epoch\n'
for dataset in compas:race adult:sex; do
  name=${dataset%%:*}; sensitive=${dataset##*:}
  train=$(ls "$work/$name-train".csv*); test=$(ls "$work/$name-test".csv*)
  for method in bernoulli joint; do
    for gamma in 0 0.5 0.9; do
      model="$work/$name-$method-$gamma"
      sqnn train "$train" --sensitive "$sensitive" --method "$method" --gamma "$gamma" --out "$model" --overwrite 2>/dev/null
      sqnn evaluate "$model" "$test" --json > "$model.eval.json" 2>/dev/null
      # Only the information figures are used here, so small forests keep this quick.
      sqnn audit-representation "$model" "$test" --trees 50 --json > "$model.audit.json" 2>/dev/null
      python - "$model" "$name" "$method" "$gamma" <<'PY'
import json, statistics, sys
model, name, method, gamma = sys.argv[1:]
evaluation = json.load(open(f"{model}.eval.json"))
audit = json.load(open(f"{model}.audit.json"))
history = json.load(open(f"{model}/meta.json"))["model"]["history"]
epoch = statistics.median(r["seconds"] for r in history)
mi = audit["mi_joint"]
print(f"{name}\t{method}\t{gamma}\t{evaluation['auc']:.4f}\t{evaluation['gpa']:.4f}\t{mi['bits']:.5f}\t{mi['estimator']}\t{epoch:.3f}")
PY
    done
  done
done
