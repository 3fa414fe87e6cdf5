"""Training time per epoch: `--method joint` against `--method bernoulli` on Adult.

Usage (from the repository root, after `pip install -e .`):

    python benchmarks/joint_speed.py [--data sample_data/adult.csv.gz] [--sensitive sex] [--epochs 5]

Same data, same feature layers (the default 64,64), same batch size; each
configuration trains for --epochs epochs and the median epoch time is reported.
Prints a markdown table for benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import statistics

import torch

from sqnn_cli.data import prepare, read_table, resolve_roles
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.preprocess import TabularEncoder

CONFIGURATIONS = (
    ("bernoulli", 8, None),
    ("joint", 8, None),
    ("bernoulli", 32, None),
    ("joint", 12, None),
    ("joint", 32, 256),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="sample_data/adult.csv.gz")
    parser.add_argument("--sensitive", default="sex")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()

    frame = read_table(args.data)
    roles = resolve_roles(frame, target=None, sensitive=[args.sensitive])
    data = prepare(frame, roles, for_training=True)
    X, _ = TabularEncoder().fit(data.features).transform(data.features)

    print(f"{len(X)} rows, {X.shape[1]} encoded features, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print()
    print("| method | code size | joint estimator | median s/epoch | relative to bernoulli, same code size |")
    print("|---|---:|---|---:|---:|")
    reference: dict[int, float] = {}
    for method, code_size, samples in CONFIGURATIONS:
        model = SQNNClassifier(
            gamma=0.5, method=method, code_size=code_size, joint_samples=samples, epochs=args.epochs, device="cpu"
        ).fit(X, data.y, sensitive_features=data.groups)
        seconds = statistics.median(record["seconds"] for record in model.history_)
        if method == "bernoulli":
            reference[code_size] = seconds
        relative = f"{seconds / reference[code_size]:.2f}x" if code_size in reference else "-"
        estimator = "-" if method == "bernoulli" else ("exact" if samples is None else f"{samples} samples")
        print(f"| {method} | {code_size} | {estimator} | {seconds:.3f} | {relative} |")


if __name__ == "__main__":
    main()
