#!/usr/bin/env bash
# Every candidate change to sqnn's defaults tried for issue 6, on every dataset, two at a
# time (one thread each). The default itself is the gamma sweep of benchmarks/peers.py,
# on the same outer folds. Usage: bash benchmarks/variants.sh > variants.md
set -euo pipefail
cd "$(dirname "$0")/.."
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
runs=()
for dataset in compas adult bank; do
  for variant in joint separation identity6; do
    runs+=("--dataset $dataset --variant $variant")
  done
  runs+=("--dataset $dataset --variant default --sensitive-as-feature")
done
runs+=("--dataset compas --variant default --set epochs=100")
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
printf '%s\n' "${runs[@]}" | nl -nrz -w2 | xargs -P 2 -L 1 sh -c \
  'python benchmarks/variants.py "$@" > "'"$out"'/$0.md"'
for file in "$out"/*.md; do
  cat "$file"
  echo
done
