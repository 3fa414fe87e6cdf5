"""Tests for sqnn_cli.metrics.

The fast metrics are checked against brute-force definitions (all pairs, a loop
over thresholds) and against fairlearn and scikit-learn, on small seeded or
hypothesis-generated data with many ties.
"""

from __future__ import annotations

import json
import math
import re
from itertools import combinations

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from sqnn_cli import metrics
from sqnn_cli.metrics import (
    EvaluationResult,
    area_under_discrimination_curve,
    cross_group_pairwise_accuracy,
    demographic_parity_difference,
    discrimination_curve,
    equalized_odds_difference,
    evaluate_scores,
    group_pairwise_accuracy_difference,
)

# fairlearn is a test extra: the cross-checks must run, never skip silently.
import fairlearn.metrics as fairlearn_metrics  # noqa: E402

# Few distinct score values, so ties (within and across groups) are common.
TIED_SCORES = [0.0, 0.25, 0.5, 0.75, 1.0]
# derandomize: the same examples every run (seeded from the test's name), and no
# example database written into the working tree.
HYPOTHESIS = settings(
    max_examples=150, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
FAIRLEARN_HYPOTHESIS = settings(HYPOTHESIS, max_examples=40)  # fairlearn is slower per call


@st.composite
def scored_groups(draw, n_groups=None, max_size=40):
    """(y_true, y_score, groups) with tied scores and 2 or 3 possible groups."""
    k = draw(st.sampled_from([2, 3])) if n_groups is None else n_groups
    n = draw(st.integers(min_value=1, max_value=max_size))
    y_true = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    y_score = draw(st.lists(st.sampled_from(TIED_SCORES), min_size=n, max_size=n))
    groups = draw(st.lists(st.sampled_from("abc"[:k]), min_size=n, max_size=n))
    return np.array(y_true), np.array(y_score), np.array(groups)


def close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=0, abs_tol=1e-12)


# ---------------------------------------------------------------------------
# Brute-force references, written straight from the definitions
# ---------------------------------------------------------------------------


def brute_pairwise_accuracy(y_true, y_score, groups, a, b) -> float:
    positives = [s for y, s, g in zip(y_true, y_score, groups) if g == a and y == 1]
    negatives = [s for y, s, g in zip(y_true, y_score, groups) if g == b and y == 0]
    if not positives or not negatives:
        return math.nan
    wins = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in positives for q in negatives)
    return wins / (len(positives) * len(negatives))


def brute_gpa(y_true, y_score, groups) -> float:
    gaps = [
        abs(brute_pairwise_accuracy(y_true, y_score, groups, a, b)
            - brute_pairwise_accuracy(y_true, y_score, groups, b, a))
        for a, b in combinations(sorted(set(groups)), 2)
    ]
    gaps = [gap for gap in gaps if not math.isnan(gap)]
    return max(gaps) if gaps else math.nan


def brute_audc(y_score, groups, n_thresholds=100) -> float:
    thresholds = np.linspace(0, 1, n_thresholds)
    labels = sorted(set(groups))
    if len(labels) < 2:
        return math.nan
    disc = []
    for t in thresholds:
        rates = [np.mean([s >= t for s, g in zip(y_score, groups) if g == label]) for label in labels]
        disc.append(max(rates) - min(rates))
    return sum((disc[i] + disc[i + 1]) / 2 * (thresholds[i + 1] - thresholds[i])
               for i in range(n_thresholds - 1))


# ---------------------------------------------------------------------------
# Pairwise accuracy and GPA
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(scored_groups())
def test_cross_group_pairwise_accuracy_matches_all_pairs(data):
    y_true, y_score, groups = data
    for a in "abc":
        for b in "abc":
            fast = cross_group_pairwise_accuracy(
                y_true, y_score, sensitive_features=groups, positive_group=a, negative_group=b
            )
            assert close(fast, brute_pairwise_accuracy(y_true, y_score, groups, a, b))


@HYPOTHESIS
@given(scored_groups())
def test_gpa_matches_all_pairs(data):
    y_true, y_score, groups = data
    fast = group_pairwise_accuracy_difference(y_true, y_score, sensitive_features=groups)
    assert close(fast, brute_gpa(y_true, y_score, groups))


def test_cross_group_accuracy_is_roc_auc_of_the_pooled_pairs():
    # Large enough that an all-pairs implementation would be slow; sklearn's AUC on
    # (positives of a) + (negatives of b) is an independent oracle for A(a>b).
    rng = np.random.default_rng(0)
    n = 20_000
    y_true = rng.integers(0, 2, n)
    y_score = np.round(rng.random(n), 2)  # rounded: many ties
    groups = rng.choice(["a", "b"], n)
    pooled = ((groups == "a") & (y_true == 1)) | ((groups == "b") & (y_true == 0))
    expected = roc_auc_score(y_true[pooled], y_score[pooled])
    fast = cross_group_pairwise_accuracy(
        y_true, y_score, sensitive_features=groups, positive_group="a", negative_group="b"
    )
    assert fast == pytest.approx(expected, abs=1e-12)


def test_gpa_two_groups_hand_computed():
    # Group a: positives 0.9, 0.4; negatives 0.6, 0.7.
    # Group b: positives 0.6;      negatives 0.5, 0.2.
    # A(a>b): (0.9 vs 0.5) 1, (0.9 vs 0.2) 1, (0.4 vs 0.5) 0, (0.4 vs 0.2) 1 -> 3/4.
    # A(b>a): (0.6 vs 0.6) tie 1/2, (0.6 vs 0.7) 0                             -> 1/4.
    # GPA = |3/4 - 1/4| = 1/2.
    y_true = [1, 1, 0, 0, 1, 0, 0]
    y_score = [0.9, 0.4, 0.6, 0.7, 0.6, 0.5, 0.2]
    groups = ["a", "a", "a", "a", "b", "b", "b"]
    kwargs = dict(sensitive_features=groups)
    assert cross_group_pairwise_accuracy(
        y_true, y_score, positive_group="a", negative_group="b", **kwargs
    ) == pytest.approx(0.75)
    assert cross_group_pairwise_accuracy(
        y_true, y_score, positive_group="b", negative_group="a", **kwargs
    ) == pytest.approx(0.25)
    assert group_pairwise_accuracy_difference(y_true, y_score, **kwargs) == pytest.approx(0.5)


def test_pairwise_accuracy_within_one_group_is_its_auc():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, 300)
    y_score = np.round(rng.random(300), 1)
    groups = rng.choice([0, 1], 300)  # non-string labels are matched via str()
    in_one = groups == 1
    value = cross_group_pairwise_accuracy(
        y_true, y_score, sensitive_features=groups, positive_group=1, negative_group=1
    )
    assert value == pytest.approx(roc_auc_score(y_true[in_one], y_score[in_one]))


def test_gpa_nan_when_not_estimable():
    y_score = [0.1, 0.9, 0.3]
    # One group only.
    assert math.isnan(
        group_pairwise_accuracy_difference([0, 1, 0], y_score, sensitive_features=["a"] * 3)
    )
    # Two groups, but no positives anywhere: no pair of either direction exists.
    assert math.isnan(
        group_pairwise_accuracy_difference([0, 0, 0], y_score, sensitive_features=["a", "b", "b"])
    )


# ---------------------------------------------------------------------------
# Discrimination curve and AUDC
# ---------------------------------------------------------------------------


@HYPOTHESIS
@given(scored_groups(), st.sampled_from([2, 7, 100]))
def test_audc_matches_threshold_loop(data, n_thresholds):
    y_true, y_score, groups = data
    fast = area_under_discrimination_curve(
        y_true, y_score, sensitive_features=groups, n_thresholds=n_thresholds
    )
    assert close(fast, brute_audc(y_score, groups, n_thresholds))


def test_discrimination_curve_shape_and_thresholds():
    thresholds, disc = discrimination_curve(
        [0.2, 0.8, 0.5, 0.5], sensitive_features=["a", "a", "b", "b"], n_thresholds=11
    )
    np.testing.assert_array_equal(thresholds, np.linspace(0, 1, 11))
    assert disc.shape == (11,)
    assert disc[0] == 0.0  # every score is >= 0 in every group
    assert np.all((disc >= 0) & (disc <= 1))


def test_audc_identical_distributions_is_zero():
    scores = np.linspace(0, 1, 50)
    y_score = np.concatenate([scores, scores, scores])
    groups = np.repeat(["a", "b", "c"], 50)
    assert area_under_discrimination_curve(np.arange(150) % 2, y_score, sensitive_features=groups) == 0.0


def test_audc_fully_separated_groups_is_about_one():
    y_score = np.array([1.0] * 20 + [0.0] * 20)
    groups = np.array([1] * 20 + [0] * 20)
    # disc(t) = 1 for every threshold except t = 0, so the area is 1 - (1/99)/2.
    audc = area_under_discrimination_curve(np.arange(40) % 2, y_score, sensitive_features=groups)
    assert audc == pytest.approx(1 - 0.5 / 99)


def test_discrimination_nan_with_one_group():
    _, disc = discrimination_curve([0.1, 0.6], sensitive_features=["a", "a"])
    assert np.isnan(disc).all()
    assert math.isnan(area_under_discrimination_curve([0, 1], [0.1, 0.6], sensitive_features=["a", "a"]))


# ---------------------------------------------------------------------------
# DP and EO against fairlearn
# ---------------------------------------------------------------------------


@st.composite
def predicted_groups(draw):
    y_true, y_score, groups = draw(scored_groups())
    assume(len(set(groups)) >= 2)  # fairlearn says 0 for one group; sqnn says NaN
    y_pred = draw(st.lists(st.integers(0, 1), min_size=len(y_true), max_size=len(y_true)))
    return y_true, np.array(y_pred), groups


@FAIRLEARN_HYPOTHESIS
@given(predicted_groups())
def test_demographic_parity_difference_matches_fairlearn(data):
    y_true, y_pred, groups = data
    ours = demographic_parity_difference(y_true, y_pred, sensitive_features=groups)
    theirs = fairlearn_metrics.demographic_parity_difference(
        y_true, y_pred, sensitive_features=groups
    )
    assert ours == pytest.approx(theirs, abs=1e-12)


@FAIRLEARN_HYPOTHESIS
@given(predicted_groups())
def test_equalized_odds_difference_matches_fairlearn(data):
    # Includes groups without positives or negatives, where fairlearn's rate is 0.
    y_true, y_pred, groups = data
    ours = equalized_odds_difference(y_true, y_pred, sensitive_features=groups)
    theirs = fairlearn_metrics.equalized_odds_difference(
        y_true, y_pred, sensitive_features=groups
    )
    assert ours == pytest.approx(theirs, abs=1e-12)


def _same(ours: float, theirs: float) -> bool:
    return (math.isnan(ours) and math.isnan(theirs)) or ours == pytest.approx(theirs, abs=1e-12)


@pytest.mark.parametrize("name", ["demographic_parity_ratio", "equalized_odds_ratio"])
@FAIRLEARN_HYPOTHESIS
@given(data=predicted_groups())
def test_ratios_match_fairlearn(name, data):
    # Includes groups without positives or negatives, and every group's rate at 0 (0/0: NaN in both).
    y_true, y_pred, groups = data
    ours = getattr(metrics, name)(y_true, y_pred, sensitive_features=groups)
    assert _same(ours, getattr(fairlearn_metrics, name)(y_true, y_pred, sensitive_features=groups))


def test_ratios_with_zero_rates_follow_fairlearn():
    groups = ["a", "a", "a", "b", "b", "b"]
    y_true = [0, 1, 0, 1, 0, 1]
    assert metrics.demographic_parity_ratio(y_true, [0, 0, 0, 1, 1, 0], sensitive_features=groups) == 0.0
    assert math.isnan(metrics.demographic_parity_ratio(y_true, [0] * 6, sensitive_features=groups))
    assert math.isnan(metrics.equalized_odds_ratio(y_true, [0] * 6, sensitive_features=groups))
    assert metrics.equalized_odds_ratio(y_true, [1] * 6, sensitive_features=groups) == 1.0


def test_per_group_fnr_and_precision_match_scikit_learn():
    from sklearn.metrics import precision_score, recall_score

    rng = np.random.default_rng(3)
    y_true, y_score = rng.integers(0, 2, 200), rng.random(200)
    groups = rng.choice(["a", "b"], 200)
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, threshold=0.4, min_group_size=0)
    for group in result.groups:
        rows = groups == group.group
        y_pred = (y_score[rows] >= 0.4).astype(int)
        assert group.ppv == pytest.approx(precision_score(y_true[rows], y_pred))
        assert group.fnr == pytest.approx(1 - recall_score(y_true[rows], y_pred))
        assert group.fnr + group.tpr == pytest.approx(1.0)


def test_dp_and_eo_nan_with_one_group():
    kwargs = dict(sensitive_features=["a"] * 4)
    assert math.isnan(demographic_parity_difference([0, 1, 0, 1], [1, 1, 0, 0], **kwargs))
    assert math.isnan(equalized_odds_difference([0, 1, 0, 1], [1, 1, 0, 0], **kwargs))


# ---------------------------------------------------------------------------
# evaluate_scores
# ---------------------------------------------------------------------------


def _three_groups(sizes=(60, 50, 8), seed=2):
    rng = np.random.default_rng(seed)
    n = sum(sizes)
    groups = np.repeat(["b", "a", "c"], sizes)  # unsorted on purpose
    y_true = rng.integers(0, 2, n)
    y_score = np.clip(0.3 * y_true + 0.2 * (groups == "a") + 0.5 * rng.random(n), 0, 1)
    return y_true, y_score, groups


def test_evaluate_scores_matches_sklearn_and_components():
    y_true, y_score, groups = _three_groups()
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, threshold=0.6)
    y_pred = (y_score >= 0.6).astype(int)
    assert result.n == len(y_true)
    assert result.threshold == 0.6
    assert result.auc == pytest.approx(roc_auc_score(y_true, y_score))
    assert result.accuracy == pytest.approx(accuracy_score(y_true, y_pred))
    assert result.balanced_accuracy == pytest.approx(balanced_accuracy_score(y_true, y_pred))
    assert result.d_gpa == pytest.approx(1 - result.auc + result.gpa)
    assert result.d_audc == pytest.approx(1 - result.auc + result.audc)

    # Group "c" (8 rows) is small: listed, but fairness uses the rows of a and b only.
    assert result.small_groups == ("c",)
    assert [g.group for g in result.groups] == ["a", "b", "c"]
    assert [g.n for g in result.groups] == [50, 60, 8]
    kept = groups != "c"
    kw = dict(sensitive_features=groups[kept])
    assert result.gpa == pytest.approx(
        group_pairwise_accuracy_difference(y_true[kept], y_score[kept], **kw)
    )
    assert result.audc == pytest.approx(area_under_discrimination_curve(y_true[kept], y_score[kept], **kw))
    assert result.dp_difference == pytest.approx(
        fairlearn_metrics.demographic_parity_difference(y_true[kept], y_pred[kept], **kw)
    )
    assert result.eo_difference == pytest.approx(
        fairlearn_metrics.equalized_odds_difference(y_true[kept], y_pred[kept], **kw)
    )


def test_group_metrics_values():
    y_true = np.array([1, 1, 0, 0, 0, 0])
    y_score = np.array([0.9, 0.2, 0.7, 0.1, 0.3, 0.8])
    groups = np.array([0, 0, 0, 0, 1, 1])  # group 1 has only negatives
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=0)
    g0, g1 = result.groups
    assert (g0.group, g0.n, g0.base_rate, g0.selection_rate) == ("0", 4, 0.5, 0.5)
    assert (g0.tpr, g0.fpr, g0.auc) == (0.5, 0.5, 0.75)
    assert (g1.group, g1.n, g1.base_rate, g1.selection_rate, g1.fpr) == ("1", 2, 0.0, 0.5, 0.5)
    assert math.isnan(g1.tpr) and math.isnan(g1.auc)


def test_fewer_than_two_large_groups_gives_nan_fairness():
    y_true, y_score, groups = _three_groups(sizes=(60, 20, 8))
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=30)
    assert result.small_groups == ("a", "c")
    for name in ("gpa", "audc", "dp_difference", "eo_difference", "dp_ratio", "eo_ratio", "d_gpa", "d_audc"):
        assert math.isnan(getattr(result, name)), name
    assert not math.isnan(result.auc)  # predictive metrics still use every row


def test_to_dict_is_strict_json():
    y_true, y_score, groups = _three_groups(sizes=(10, 10, 10))
    y_true[groups == "c"] = 1  # group c: single class, so its fpr and auc are NaN
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=30)
    as_dict = result.to_dict()
    assert list(as_dict) == [
        "auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference",
        "eo_difference", "dp_ratio", "eo_ratio", "d_gpa", "d_audc", "n", "threshold", "groups", "small_groups",
        "positive_rate", "degenerate", "constant_scores",
    ]
    assert list(as_dict["groups"][0]) == [
        "group", "n", "base_rate", "selection_rate", "tpr", "fpr", "fnr", "ppv", "auc",
    ]
    assert as_dict["gpa"] is None and as_dict["d_audc"] is None
    assert as_dict["groups"][2]["auc"] is None and as_dict["groups"][2]["fpr"] is None
    assert as_dict["small_groups"] == ["a", "b", "c"]
    assert type(as_dict["n"]) is int and type(as_dict["groups"][0]["n"]) is int
    assert type(as_dict["auc"]) is float
    assert as_dict["degenerate"] is False and as_dict["constant_scores"] is False
    assert json.loads(json.dumps(as_dict, allow_nan=False)) == as_dict


def test_json_output_turns_every_undefined_number_into_null():
    """The one sanitiser every to_dict and --json goes through: NaN and both infinities
    become null, numpy scalars Python values, and flags stay true/false, not 1/0."""
    from sqnn_cli.jsonable import plain

    value = plain({"nan": np.float64("nan"), "inf": float("inf"), "-inf": np.float32("-inf"),
                   "n": np.int64(3), "ok": np.bool_(True), "no": False, "pair": (1.5, np.float32(0.5))})
    assert value == {"nan": None, "inf": None, "-inf": None, "n": 3, "ok": True, "no": False, "pair": [1.5, 0.5]}
    assert type(value["n"]) is int and value["ok"] is True and value["no"] is False


def test_single_class_y_true_gives_nan_auc():
    result = evaluate_scores([1, 1, 1, 1], [0.2, 0.9, 0.6, 0.4],
                             sensitive_features=["a", "a", "b", "b"], min_group_size=0)
    assert math.isnan(result.auc) and math.isnan(result.d_gpa)
    assert result.balanced_accuracy == 0.5  # recall of the only class present
    assert isinstance(result, EvaluationResult)


@pytest.mark.parametrize(
    "name", ["demographic_parity_difference", "equalized_odds_difference", "demographic_parity_ratio", "equalized_odds_ratio"]
)
def test_fairlearn_named_metrics_are_called_as_in_fairlearn(name):
    """A fairlearn user's call works unchanged and gives fairlearn's answer; a positional
    group column is refused rather than read as something else."""
    y_true, y_pred, groups = [0, 1, 1, 0, 1, 0], [0, 1, 0, 0, 1, 1], ["a", "a", "b", "b", "a", "b"]
    ours = getattr(metrics, name)(y_true, y_pred, sensitive_features=groups)
    assert ours == pytest.approx(getattr(fairlearn_metrics, name)(y_true, y_pred, sensitive_features=groups))
    with pytest.raises(TypeError):
        getattr(metrics, name)(y_true, y_pred, groups)


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------

_OK = dict(y_true=[0, 1, 1], y_score=[0.1, 0.5, 0.9], sensitive_features=["a", "b", "a"])


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(y_score=[0.1, 0.5]), "y_true, y_score/y_pred and sensitive_features must have the same length"),
        (dict(sensitive_features=["a", "b"]), "y_true, y_score/y_pred and sensitive_features must have the same length"),
        (dict(y_true=[0, 2, 1]), "y_true must contain only the values 0 and 1"),
        (dict(y_true=["0", "1", "1"]), "y_true must contain only the values 0 and 1"),
        (dict(y_true=[0, np.nan, 1]), "y_true must contain only the values 0 and 1"),
        (dict(y_score=[0.1, np.nan, 0.9]), "y_score must contain only finite numbers"),
        (dict(y_score=[0.1, np.inf, 0.9]), "y_score must contain only finite numbers"),
        (dict(y_score=["0.1", "0.5", "0.9"]), "y_score must contain only finite numbers"),
        (dict(y_score=[0.1, 1.5, 0.9]), "y_score must lie in [0, 1]"),
        (dict(y_score=[[0.1], [0.5], [0.9]]), "y_true, y_score, y_pred and sensitive_features must be 1-D"),
        (dict(y_true=[], y_score=[], sensitive_features=[]), "metrics need at least one row; got empty input"),
        (dict(min_group_size=-1), "min_group_size must be a non-negative integer"),
    ],
)
def test_evaluate_scores_rejects_bad_input(changes, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        evaluate_scores(**{**_OK, **changes})


def test_other_functions_reject_bad_input():
    groups = _OK["sensitive_features"]
    with pytest.raises(ValueError, match=re.escape("y_pred must contain only the values 0 and 1")):
        demographic_parity_difference([0, 1, 1], [0, 0.5, 1], sensitive_features=groups)
    with pytest.raises(ValueError, match=re.escape("y_true, y_score/y_pred and sensitive_features must have the same length")):
        equalized_odds_difference([0, 1, 1], [0, 1], sensitive_features=groups)
    with pytest.raises(ValueError, match=re.escape("y_score must contain only finite numbers")):
        group_pairwise_accuracy_difference([0, 1, 1], [0, np.nan, 1], sensitive_features=groups)
    with pytest.raises(ValueError, match=re.escape("n_thresholds must be an integer >= 2")):
        area_under_discrimination_curve([0, 1, 1], [0.1, 0.5, 0.9], sensitive_features=groups, n_thresholds=1)
    # Rank-based metrics accept any real score; only the threshold-based ones need [0, 1].
    assert not math.isnan(
        group_pairwise_accuracy_difference([0, 1, 1, 0], [-3.0, 2.0, 5.0, 1.0],
                                           sensitive_features=["a", "a", "b", "b"])
    )
