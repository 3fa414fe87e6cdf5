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


def _trial(gamma: float, criterion: float, d_gpa: float, d_audc: float) -> dict:
    return {
        "config": {"gamma": gamma},
        "inner_criterion": criterion,
        "inner_means": {"d_gpa": d_gpa, "d_audc": d_audc},
    }


def test_per_metric_selection_picks_each_metrics_argmin_and_criterion_its_argmax(peers):
    trials = [
        _trial(0.0, 2.10, 0.50, 0.36),
        _trial(0.3, 2.30, 0.49, 0.33),  # the lowest dAUDC
        _trial(0.8, 2.50, 0.42, 0.39),  # the best criterion and the lowest dGPA
        _trial(0.9, 2.40, 0.45, 0.40),
    ]

    assert peers.choose(trials, "criterion") == {"gamma": 0.8}
    assert peers.choose(trials, "d_gpa") == {"gamma": 0.8}
    assert peers.choose(trials, "d_audc") == {"gamma": 0.3}


def test_per_metric_selection_never_picks_a_failed_or_nan_trial(peers):
    trials = [
        {"config": {"eps": 0.01}, "inner_criterion": -float("inf"), "error": "boom"},
        _trial(0.2, float("nan"), float("nan"), float("nan")),
        _trial(0.4, 2.0, 0.60, 0.50),
        _trial(0.6, 1.9, 0.60, 0.45),
    ]

    assert peers.choose(trials, "d_gpa") == {"gamma": 0.4}  # a tie: the earlier one
    assert peers.choose(trials, "d_audc") == {"gamma": 0.6}
    assert peers.choose(trials, "criterion") == {"gamma": 0.4}


def test_per_metric_records_refit_only_configurations_not_yet_fitted_outside(peers):
    X, y, s = _data()
    fitted_configs = []

    def fit(config, X_, y_, s_, epochs):
        fitted_configs.append(config)
        return peers.Fitted(lambda X__, s__: 1 / (1 + np.exp(-config["w"] * X__[:, 0])))

    method = peers.Method("toy", [], [], fit)
    parts = (X, X, y, y, s, s)
    _, scores = peers.fit_and_score(method, {"w": 1.0}, parts, None)
    record = {"config": {"w": 1.0}, **scores}
    trials = [
        {**_trial(0, 2.0, 0.5, 0.4), "config": {"w": 1.0}},  # criterion and dGPA
        {**_trial(0, 1.9, 0.6, 0.3), "config": {"w": 2.0}},  # dAUDC
    ]
    fitted_configs.clear()

    chosen = peers.per_metric_records(
        method, trials, record, parts, SimpleNamespace(epochs=None)
    )

    assert fitted_configs == [{"w": 2.0}]  # the criterion's outer fit is reused
    assert chosen["d_gpa"]["config"] == {"w": 1.0}
    assert chosen["d_gpa"]["d_gpa"] == record["d_gpa"]
    assert chosen["d_audc"]["config"] == {"w": 2.0}
    # A method with nothing to choose reports its one fit in both columns.
    assert peers.per_metric_records(
        method, [], record, parts, SimpleNamespace(epochs=None)
    ) == {
        "d_gpa": {"config": {"w": 1.0}, **scores},
        "d_audc": {"config": {"w": 1.0}, **scores},
    }


def test_per_metric_table_reads_each_column_from_its_own_choice_within_a_regime(peers):
    def chosen(config_gpa, d_gpa, config_audc, d_audc):
        return {
            **_record(0.9, 0.9),  # the criterion's figures, not shown here
            "by_metric": {
                "d_gpa": {**_record(d_gpa, 0.9), "config": config_gpa},
                "d_audc": {**_record(0.9, d_audc), "config": config_audc},
            },
        }

    result = {
        "methods": {
            "sqnn_bernoulli": [chosen({"gamma": 0.8}, 0.42, {"gamma": 0.3}, 0.33)],
            "advcls": [chosen({"gamma": 0.6}, 0.40, {"gamma": 0.8}, 0.36)],
            "threshold_dp": [chosen({}, 0.10, {}, 0.10)],
        }
    }

    table = peers.per_metric_table("toy", result)
    unseen, seen = table.split("Regime: the scorer sees S.")

    assert '| sqnn_bernoulli | {"gamma": 0.8} | 0.420 ± 0.000 |' in unseen
    assert '| {"gamma": 0.3} | **0.330 ± 0.000** |' in unseen
    assert (
        "- sqnn_bernoulli: d_gpa 0.420 vs best peer advcls 0.400: loses by 0.020; "
        "d_audc 0.330 vs best peer advcls 0.360: wins by 0.030"
    ) in unseen
    assert "threshold_dp" not in unseen and "| threshold_dp | fixed |" in seen


def test_selection_defaults_to_the_papers_criterion_and_refuses_other_values(peers):
    assert peers.parse_args([]).selection == "criterion"
    assert peers.parse_args(["--selection", "per-metric"]).selection == "per-metric"
    with pytest.raises(SystemExit) as exit_:
        peers.parse_args(["--selection", "best"])
    assert exit_.value.code == 2
