"""benchmarks/paper.py's own arithmetic: the Figure 3 correlations over per-gamma means,
the L1 choice of a best gamma, and its option checks. The runs are too slow for the suite."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("fairlearn")  # peers.py, which paper.py imports, needs it


@pytest.fixture(scope="module")
def paper():
    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location("paper", REPO / "benchmarks" / "paper.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("paper", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def records(rows):
    """rows: (gamma, fold, auc, gpa, audc)"""
    return [
        {"gamma": g, "fold": f, "auc": a, "gpa": p, "audc": d, "eo_difference": p}
        for g, f, a, p, d in rows
    ]


def test_correlations_use_the_per_gamma_means(paper):
    # Fold values are noisy (fold 1 of gamma 0.5 is the fairest single fit), but their
    # means fall monotonically in gamma, so Spearman is exactly 1 on the means.
    rows = records(
        [
            (0.0, 0, 0.80, 0.30, 0.20),
            (0.0, 1, 0.78, 0.20, 0.10),
            (0.5, 0, 0.70, 0.25, 0.15),
            (0.5, 1, 0.68, 0.05, 0.01),
            (1.0, 0, 0.50, 0.02, 0.01),
            (1.0, 1, 0.52, 0.04, 0.02),
        ]
    )
    corr = paper.correlations(rows)
    assert corr["1-GPA"]["spearman"] == pytest.approx(1.0)
    assert corr["1-AUDC"]["spearman"] == pytest.approx(1.0)
    assert corr["AUC"]["spearman"] == pytest.approx(-1.0)
    assert 0.9 < corr["1-GPA"]["pearson"] < 1.0


def test_a_flat_curve_has_no_correlation(paper):
    rows = records([(g, 0, 0.7, 0.1, 0.05) for g in (0.0, 0.5, 1.0)])
    assert math.isnan(paper.correlations(rows)["1-GPA"]["spearman"])


def test_best_gamma_is_the_closest_to_the_ideal_point_in_l1(paper):
    rows = records(
        [
            (0.0, 0, 0.80, 0.30, 0.20),  # L1 to (1, 0) in (AUC, GPA): 0.50
            (0.5, 0, 0.75, 0.10, 0.15),  # 0.35, the best
            (1.0, 0, 0.50, 0.00, 0.00),  # 0.50
        ]
    )
    best = paper.best_by_l1(rows, "gpa", lambda auc, gpa: (1 - auc) + gpa)
    assert best["gamma"] == 0.5
    assert best["distance"] == pytest.approx(0.35)


@pytest.mark.parametrize(
    "argv",
    [
        ["--methods", "svm"],
        ["--gammas", "0,1.5"],
        ["--gammas", "a"],
        ["--outer-folds", "1"],
        ["--inner-folds", "1"],
    ],
)
def test_bad_options_are_refused(paper, argv):
    with pytest.raises(SystemExit) as exit_:
        paper.parse_args(argv)
    assert exit_.value.code == 2


def test_defaults_are_the_papers_grid(paper):
    args = paper.parse_args([])
    assert args.gammas == [round(0.1 * i, 1) for i in range(11)]
    assert args.methods == ["bernoulli", "joint", "adversarial", "vfae"]
    assert args.objectives == ["independence"]


def test_a_rerun_plans_only_the_fits_not_yet_done_with_these_settings(paper):
    args = paper.parse_args(["--datasets", "compas", "--methods", "bernoulli", "--gammas", "0,1"])
    settings = paper.settings_of(args)
    done = {paper.key_of({**vars(t), **settings}) for t in paper.plan(args, set()) if t.gamma == 0}
    assert {t.gamma for t in paper.plan(args, done)} == {1.0}
    # Other epochs are other fits: nothing is taken as done.
    other = paper.parse_args(["--datasets", "compas", "--methods", "bernoulli", "--gammas", "0,1", "--epochs", "5"])
    assert len(paper.plan(other, done)) == 2 * other.outer_folds * (1 + other.inner_folds)


def test_outer_fits_written_before_inner_folds_existed_are_still_done(paper):
    args = paper.parse_args(["--datasets", "compas", "--methods", "bernoulli", "--gammas", "0"])
    old_record = {  # paper.json's records before this change have no "inner" key
        "dataset": "compas", "method": "bernoulli", "objective": "independence",
        "gamma": 0.0, "fold": 0, "epochs": None, "outer_folds": 3, "audit_trees": 100,
    }
    todo = paper.plan(args, {paper.key_of(old_record)})
    assert not any(t.fold == 0 and t.inner is None for t in todo)
    assert sum(t.fold == 0 and t.inner is not None for t in todo) == args.inner_folds


def test_inner_folds_split_only_the_outer_training_part(paper):
    train_idx, test_idx = paper.outer_folds("compas", 3)[1]
    splits = paper.inner_folds("compas", 3, 1, 2)
    held_out = np.concatenate([rows for _, rows in splits])
    assert sorted(held_out) == sorted(train_idx)
    for fit, rows in splits:
        assert not set(fit) & set(rows) and not set(fit) & set(test_idx)


def test_best_gamma_on_inner_folds_is_chosen_per_outer_fold_and_scored_on_its_test_part(paper):
    gpa_distance = lambda auc, gpa: (1 - auc) + gpa  # noqa: E731
    # Inner folds: fold 0 prefers gamma 0.5 (L1 0.35 against 0.50), fold 1 gamma 1.
    inner = records(
        [
            (0.0, 0, 0.80, 0.30, 0.0),
            (0.5, 0, 0.75, 0.10, 0.0),
            (0.0, 1, 0.80, 0.30, 0.0),
            (1.0, 1, 0.70, 0.00, 0.0),
        ]
    )
    # Outer test folds: gamma 0 would look best here, but the test folds choose nothing.
    outer = records(
        [
            (0.0, 0, 0.90, 0.00, 0.0),
            (0.5, 0, 0.70, 0.20, 0.0),
            (1.0, 0, 0.60, 0.10, 0.0),
            (0.0, 1, 0.90, 0.00, 0.0),
            (0.5, 1, 0.70, 0.10, 0.0),
            (1.0, 1, 0.60, 0.00, 0.0),
        ]
    )
    best = paper.best_on_inner_folds(inner, outer, "gpa", gpa_distance)
    assert best["gammas"] == [0.5, 1.0]
    assert best["auc"] == pytest.approx(0.65)
    assert best["gpa"] == pytest.approx(0.10)
    assert best["distance"] == pytest.approx(0.45)
    assert paper.best_by_l1(outer, "gpa", gpa_distance)["gamma"] == 0.0  # the optimistic one
    assert paper.best_on_inner_folds([], outer, "gpa", gpa_distance) is None
