"""benchmarks/peers.py's issue-16 parts: ExponentiatedGradient's averaged predict_proba,
the all-races COMPAS protocol, and tables that compare methods only within their
information regime. The benchmark itself is too slow for the suite."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.linear_model import LogisticRegression

REPO = Path(__file__).resolve().parent.parent
pytest.importorskip("fairlearn")


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location(
        "peers", REPO / "benchmarks" / "peers.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("peers", module)
    spec.loader.exec_module(module)
    return module


def _data(n: int = 300, seed: int = 0):
    rng = np.random.default_rng(seed)
    s = rng.choice(["a", "b"], size=n)
    X = np.column_stack([rng.normal(size=n), rng.normal(size=n) + (s == "b")])
    y = (X[:, 0] + X[:, 1] + rng.normal(size=n) > 0.5).astype(np.int64)
    return X, y, s


def test_averaged_proba_weights_each_predictor_and_reads_one_class_dummies_as_zero(
    peers,
):
    X, y, _ = _data()
    logistic = LogisticRegression().fit(X, y)
    # fairlearn's oracle falls back to this when every reweighted label is 0.
    all_zero = DummyClassifier(strategy="constant", constant=0).fit(X, np.zeros_like(y))
    unused = DummyClassifier(strategy="constant", constant=1).fit(X, np.ones_like(y))
    model = SimpleNamespace(
        weights_=pd.Series([0.25, 0.75, 0.0]),
        predictors_=pd.Series([logistic, all_zero, unused]),
    )

    scores = peers.averaged_proba(model, X)

    np.testing.assert_allclose(scores, 0.25 * logistic.predict_proba(X)[:, 1])


def test_expgrad_proba_scores_are_graded_where_its_randomized_scores_are_not(peers):
    X, y, s = _data()
    fit_pmf = peers.METHODS["expgrad_dp"].fit
    fit_proba = peers.METHODS["expgrad_dp_proba"].fit

    pmf = fit_pmf({"eps": 0.05}, X, y, s, None).score(X, s)
    proba = fit_proba({"eps": 0.05}, X, y, s, None).score(X, s)

    assert proba.shape == pmf.shape == (len(y),)
    assert proba.min() >= 0.0 and proba.max() <= 1.0
    # A mixture of a few 0/1 classifiers takes a handful of values; averaged
    # probabilities almost one per row.
    assert len(np.unique(proba)) > 10 * len(np.unique(pmf))


def test_compas_all_keeps_every_race_with_s_african_american_against_the_rest(peers):
    raw = pd.read_csv(REPO / "sample_data" / "compas.csv")
    features, y, s = peers.load_compas_all()
    _, _, s_paper = peers.load_compas()

    assert len(features) == len(y) == len(s) == len(raw)
    assert list(features.columns) == peers.COMPAS_FEATURES
    assert set(s) == {"African-American", "other"}
    assert (s == "African-American").sum() == (raw["race"] == "African-American").sum()
    # The paper's protocol is untouched: its two groups only.
    assert set(s_paper) == {"African-American", "Caucasian"}
    assert len(s_paper) < len(raw)


def _record(d_gpa: float, d_audc: float) -> dict:
    return {
        "fold": 0,
        "config": {},
        "auc": 0.7,
        "gpa": 0.1,
        "audc": 0.1,
        "dp_difference": 0.1,
        "d_gpa": d_gpa,
        "d_audc": d_audc,
        "fit_seconds": 1.0,
    }


def test_tables_compare_sqnn_only_with_peers_of_its_information_regime(peers):
    result = {
        "rows": 10,
        "groups": {"a": 5, "b": 5},
        "positive_rate": 0.5,
        "methods": {
            "sqnn_bernoulli": [_record(0.30, 0.30)],
            "logistic": [_record(0.40, 0.20)],
            "sqnn_bernoulli_s": [_record(0.25, 0.25)],
            # Best of all on dGPA, but it needs S to score.
            "threshold_dp": [_record(0.10, 0.35)],
        },
    }

    table = peers.markdown_table("toy", result)
    unseen, seen = table.split("Regime: the scorer sees S.")

    assert "Regime: the scorer never sees S." in unseen
    assert "threshold_dp" not in unseen and "sqnn_bernoulli_s" not in unseen
    assert "| logistic |" not in seen
    assert (
        "- sqnn_bernoulli: d_gpa 0.300 vs best peer logistic 0.400: wins by 0.100; "
        "d_audc 0.300 vs best peer logistic 0.200: loses by 0.100"
    ) in unseen
    assert (
        "- sqnn_bernoulli_s: d_gpa 0.250 vs best peer threshold_dp 0.100: loses by 0.150"
    ) in seen
