"""What the candidate changes to sqnn's defaults do to the fairness/accuracy trade-off.

Usage (from the repository root, after `pip install -e .`):

    python benchmarks/variants.py --dataset adult --gammas 0.2,0.4,0.6,0.8,0.9 \
        --variant joint

Each variant is sqnn's estimator with one thing changed; every other setting is the
default. For each gamma it trains on the 3 stratified outer folds of peers.py
(DESIGN.md §5 protocol, the same datasets and encoder) and prints the fold means of
AUC, GPA, AUDC, dGPA and dAUDC, so a variant can be judged against the default on the
numbers issue 6 is judged by.

Variants:
  default      sqnn as `sqnn train` builds it
  joint        --method joint (8 neurons, exact I(T;S))
  code8        --code-size 8 with the bernoulli loss
  separation   the bernoulli loss on I(T;S | Y) instead of I(T;S): the penalty is
               sum_y p(y) I(T;S | Y=y), each term from the rows of the batch with that
               label. Independence of T and S (the paper's goal) drives AUDC and DP
               down; separation drives GPA, a cross-group ranking gap, to zero.
  joint-separation  the same with the joint estimator
  identity6    the authors' identity straight-through with temperature 6
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import SEED, encode, load, outer_folds

from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.metrics import evaluate_scores
from sqnn_cli.training import autograd_step


class SeparationClassifier(SQNNClassifier):
    """sqnn whose information term is I(T;S | Y): experiment only, not a product option."""

    def _training_step(self, device):
        def step(network, x, y, groups, *, generator):
            def separation(theta, groups, generator):
                information = torch.zeros((), device=theta.device)
                for label in (0.0, 1.0):
                    rows = y == label
                    if rows.sum() > 1:
                        _, term = self._information_penalty(
                            theta[rows], groups[rows], generator
                        )
                        information = information + term * rows.float().mean()
                return information, information

            return autograd_step(
                network,
                x,
                y,
                groups,
                gamma=float(self.gamma),
                penalty=separation,
                generator=generator,
            )

        return step


VARIANTS = {
    "default": (SQNNClassifier, {}),
    "joint": (SQNNClassifier, {"method": "joint"}),
    "code8": (SQNNClassifier, {"code_size": 8}),
    "separation": (SeparationClassifier, {}),
    "joint-separation": (SeparationClassifier, {"method": "joint"}),
    "identity6": (SQNNClassifier, {"straight_through": "identity", "temperature": 6.0}),
}
KEYS = ("auc", "gpa", "audc", "d_gpa", "d_audc")


def _parameter(text: str) -> tuple[str, object]:
    name, _, value = text.partition("=")
    return name, json.loads(value)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dataset", default="compas", choices=("compas", "adult", "bank")
    )
    parser.add_argument("--variant", default="default", choices=tuple(VARIANTS))
    parser.add_argument("--gammas", default="0.2,0.4,0.6,0.8,0.9")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument(
        "--sensitive-as-feature",
        action="store_true",
        help="give the network S as an input column too (sqnn train --sensitive-as-feature)",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="PARAM=VALUE",
        help="also change one estimator parameter, e.g. epochs=100 (repeatable)",
    )
    args = parser.parse_args(argv)
    cls, params = VARIANTS[args.variant]
    params = {**params, **dict(_parameter(text) for text in args.set)}
    features, y, s = load(args.dataset)
    if args.sensitive_as_feature:
        features = features.assign(sensitive=s)
    extra = ", S as a feature" if args.sensitive_as_feature else ""
    print(
        f"{args.dataset}, variant {args.variant} {params}{extra}, {args.folds} outer folds (fold means)"
    )
    print("| gamma | AUC | GPA | AUDC | dGPA | dAUDC | s |")
    print("|---:|---|---|---|---|---|---|")
    for gamma in (float(g) for g in args.gammas.split(",")):
        started = time.perf_counter()
        rows = []
        for train_idx, test_idx in outer_folds(args.dataset, args.folds):
            X_train, X_test = encode(features.iloc[train_idx], features.iloc[test_idx])
            model = cls(gamma=gamma, random_state=SEED, device="cpu", **params)
            model.fit(X_train, y[train_idx], sensitive_features=s[train_idx])
            result = evaluate_scores(
                y[test_idx],
                model.predict_proba(X_test)[:, 1],
                sensitive_features=s[test_idx],
            )
            rows.append([getattr(result, key) for key in KEYS])
        means = np.mean(rows, axis=0)
        cells = " | ".join(f"{v:.3f}" for v in means)
        print(
            f"| {gamma:g} | {cells} | {time.perf_counter() - started:.0f} |", flush=True
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
