"""The GPA a scorer shows on Adult's outer test folds when its true GPA is 0.

GPA is an absolute difference of two estimated cross-group pairwise accuracies, so
sampling noise alone makes it positive; this measures that floor at several AUCs.
Scores are drawn independent of S given Y, N(delta * y, 1), with delta set so that
the AUC is the target; 100 draws on each of peers.py's 3 outer test folds (seed 0).

    python benchmarks/gpa_floor.py
"""

import sys
from pathlib import Path

import numpy as np
from scipy.stats import norm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import load, outer_folds  # noqa: E402 -- benchmarks/ is not a package

from sqnn_cli.metrics import group_pairwise_accuracy_difference  # noqa: E402


def main() -> None:
    _, y, s = load("adult")
    rng = np.random.default_rng(0)
    for auc in (0.5, 0.7, 0.85, 0.9):
        delta = np.sqrt(2) * norm.ppf(auc)  # the AUC of N(delta, 1) against N(0, 1)
        gpas = []
        for _, test in outer_folds("adult", 3):
            for _ in range(100):
                scores = rng.normal(size=len(test)) + delta * y[test]
                gpas.append(
                    group_pairwise_accuracy_difference(
                        y[test], scores, sensitive_features=s[test]
                    )
                )
        gpas = np.asarray(gpas)
        print(
            f"AUC {auc}: GPA measured where the true GPA is 0: mean {gpas.mean():.4f}, "
            f"std {gpas.std():.4f}, 90% quantile {np.quantile(gpas, 0.9):.4f} ({len(gpas)} draws)"
        )


if __name__ == "__main__":
    main()
