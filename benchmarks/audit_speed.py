"""Wall time of `sqnn audit-representation` against naive scikit-learn forests.

Usage (from the repository root, after `pip install -e .`):

    python benchmarks/audit_speed.py [--data sample_data/adult.csv.gz] [--sensitive sex] [--workdir /tmp/sqnn-bench]

Trains the default model (unless the workdir already holds it), then times, each in a
fresh process so that imports are counted the same way:
  1. the default audit: `sqnn audit-representation MODEL DATA --json` (1000 trees);
  2. a naive script fitting the same three forests with plain scikit-learn
     (S from the sampled code, y from the sampled code, S from theta; 1000 trees,
     n_jobs=-1) on the same split;
  3. a naive script fitting one forest, S from the sampled code, with scikit-learn's
     defaults (n_jobs=None, one core) and with n_jobs=-1.
Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

NAIVE = r"""
import sys, time, numpy as np
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import train_test_split
from sqnn_cli.bundle import load_bundle
from sqnn_cli.data import read_table, prepare
model, data, which = sys.argv[1], sys.argv[2], sys.argv[3]
fitted = load_bundle(model).model
prepared = prepare(read_table(data), fitted.roles)
X, _ = fitted.encoder.transform(prepared.features)
codes = fitted.estimator.binary_codes(X)
theta = fitted.estimator.firing_probabilities(X)
s, y = prepared.groups, prepared.y
train, test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=0, stratify=s)
if which == "same-forests":
    for features, target in ((codes, s), (codes, y), (theta, s)):
        RandomForestClassifier(n_estimators=1000, n_jobs=-1, random_state=0).fit(features[train], target[train]).score(features[test], target[test])
else:
    n_jobs = None if which == "one-forest-default" else -1
    RandomForestClassifier(n_estimators=1000, n_jobs=n_jobs, random_state=0).fit(codes[train], s[train]).score(codes[test], s[test])
"""


def timed(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return time.perf_counter() - started, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sample_data/adult.csv.gz")
    parser.add_argument("--sensitive", default="sex")
    parser.add_argument("--workdir", default="/tmp/sqnn-bench")
    args = parser.parse_args()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    model = workdir / "adult-default"
    sqnn = [sys.executable, "-m", "sqnn_cli"]
    if not model.exists():
        subprocess.run([*sqnn, "train", args.data, "--sensitive", args.sensitive, "--out", str(model)], check=True)

    audit_seconds, audit_json = timed([*sqnn, "audit-representation", str(model), args.data, "--json"])
    audit = json.loads(audit_json)
    rows = [("sqnn audit-representation (default: 3 forests of 1000 trees, flows, joint MI)", audit_seconds)]
    for which, label in (
        ("same-forests", "naive script: the same 3 forests, plain scikit-learn, n_jobs=-1"),
        ("one-forest-default", "naive script: 1 forest (S from code), scikit-learn defaults (1 core)"),
        ("one-forest-all-cores", "naive script: 1 forest (S from code), n_jobs=-1"),
    ):
        seconds, _ = timed([sys.executable, "-c", NAIVE, str(model), args.data, which])
        rows.append((label, seconds))

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"joint I(T;S): {audit['mi_joint']}")
    print()
    print("| what | wall time (s) | relative to the naive same-forests script |")
    print("|---|---:|---:|")
    reference = rows[1][1]
    for label, seconds in rows:
        print(f"| {label} | {seconds:.1f} | {seconds / reference:.2f}x |")


if __name__ == "__main__":
    main()
