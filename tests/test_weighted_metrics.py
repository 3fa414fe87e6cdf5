"""Sample weights in every metric (issue 15, item 5): a weight is a frequency weight, so
the weighted figures are fairlearn's and scikit-learn's with ``sample_weight``, integer
weights give the figures of the table with each row repeated that many times, all-ones
weights give the unweighted figures, and bad weights are refused naming ``sample_weight``."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

import fairlearn.metrics as fairlearn_metrics
from sqnn_cli import metrics
from sqnn_cli.errors import ParameterError
from sqnn_cli.metrics import (
    area_under_discrimination_curve,
    balanced_accuracy_threshold,
    cross_group_pairwise_accuracy,
    discrimination_curve,
    evaluate_scores,
    group_pairwise_accuracy_difference,
)
from sqnn_cli.uncertainty import bootstrap_intervals

from .test_metrics import FAIRLEARN_HYPOTHESIS, HYPOTHESIS, close, scored_groups

# Each example evaluates a table twice (weighted, and repeated or unweighted): fewer suffice.
WEIGHTED_HYPOTHESIS = settings(HYPOTHESIS, max_examples=50)
FAIRLEARN_NAMED = ["demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference", "equalized_odds_ratio"]
OVERALL = [
    "auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference", "eo_difference", "dp_ratio", "eo_ratio",
    "d_gpa", "d_audc", "positive_rate", "degenerate", "constant_scores", "small_groups",
]  # fmt: skip
PER_GROUP = ["base_rate", "selection_rate", "tpr", "fpr", "fnr", "ppv", "auc"]


def group_weights(groups: np.ndarray, weights: np.ndarray) -> dict[str, float]:
    return {g: float(weights[groups == g].sum()) for g in sorted(set(groups))}


@st.composite
def weighted(draw, weights=(0.0, 0.5, 1.0, 2.0, 3.25), min_weighed_groups=1, zero_a_group=True):
    """(y_true, y_score, y_pred, groups, weights); with ``zero_a_group`` one group's rows all
    weigh 0 in about half the examples; at least ``min_weighed_groups`` groups keep a positive weight."""
    y_true, y_score, groups = draw(scored_groups())
    n = len(y_true)
    y_pred = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)))
    w = np.array(draw(st.lists(st.sampled_from(weights), min_size=n, max_size=n)), dtype=float)
    if zero_a_group and draw(st.booleans()):
        w[groups == draw(st.sampled_from(sorted(set(groups))))] = 0.0
    assume(sum(total > 0 for total in group_weights(groups, w).values()) >= min_weighed_groups)
    return y_true, y_score, y_pred, groups, w


# -- against fairlearn ---------------------------------------------------------------------
@pytest.mark.parametrize("name", FAIRLEARN_NAMED)
@FAIRLEARN_HYPOTHESIS
@given(data=weighted(min_weighed_groups=2))
def test_weighted_fairness_metrics_equal_fairleans_with_sample_weight(name, data):
    """Zero rates (ratios of 0 and 0/0) and a group of weight 0 included. fairlearn's
    equalized odds refuse a group of weight 0 outright (scikit-learn's confusion matrix
    needs a positive weight), while its demographic parity skips that group's undefined
    rate; ours skips it in both, so the equalized-odds oracle is called without its rows."""
    y_true, _, y_pred, groups, w = data
    ours = getattr(metrics, name)(y_true, y_pred, sensitive_features=groups, sample_weight=w)
    rows = np.ones(len(y_true), dtype=bool)
    if name.startswith("equalized_odds"):
        rows = np.isin(groups, [g for g, total in group_weights(groups, w).items() if total > 0])
    theirs = getattr(fairlearn_metrics, name)(y_true[rows], y_pred[rows], sensitive_features=groups[rows], sample_weight=w[rows])
    assert close(ours, theirs), (ours, theirs)


def test_a_group_of_weight_zero_is_skipped_as_fairlearn_skips_it():
    groups = np.array(list("aabbcc"))
    y_true, y_pred = np.array([0, 1, 1, 0, 1, 0]), np.array([0, 1, 0, 0, 1, 1])
    w = np.array([1, 2, 0, 0, 1.5, 1])
    # a selects 2/3, c selects 1, b (weight 0) nothing: without skipping, DP would be 1.
    for name, expected in (("demographic_parity_difference", 1 / 3), ("demographic_parity_ratio", 2 / 3)):
        ours = getattr(metrics, name)(y_true, y_pred, sensitive_features=groups, sample_weight=w)
        assert ours == pytest.approx(expected, abs=1e-12)
        theirs = getattr(fairlearn_metrics, name)(y_true, y_pred, sensitive_features=groups, sample_weight=w)
        assert ours == pytest.approx(theirs, abs=1e-12)
    # only one group of positive weight left: nothing to compare, as with one group
    only_a = [1, 1, 0, 0, 0, 0]
    assert math.isnan(metrics.demographic_parity_difference(y_true, y_pred, sensitive_features=groups, sample_weight=only_a))


def _frame_rates(y_true, y_pred, groups, w):
    """fairlearn's per-group rates with the weights, as MetricFrame computes them."""
    from sklearn.metrics import precision_score

    def base_rate(y_true, y_pred, sample_weight):
        return np.average(y_true, weights=sample_weight)

    def ppv(y_true, y_pred, sample_weight):
        return precision_score(y_true, y_pred, sample_weight=sample_weight, zero_division=np.nan)

    functions = {
        "base_rate": base_rate, "selection_rate": fairlearn_metrics.selection_rate, "tpr": fairlearn_metrics.true_positive_rate,
        "fpr": fairlearn_metrics.false_positive_rate, "fnr": fairlearn_metrics.false_negative_rate, "ppv": ppv,
    }  # fmt: skip
    frame = fairlearn_metrics.MetricFrame(
        # a Series, as fairlearn squeezes a one-row array to no dimensions
        metrics=functions, y_true=y_true, y_pred=y_pred, sensitive_features=pd.Series(groups),
        sample_params={name: {"sample_weight": w} for name in functions},
    )  # fmt: skip
    return frame.by_group


@FAIRLEARN_HYPOTHESIS
@given(data=weighted())
def test_per_group_rates_equal_metricframes_with_sample_params(data):
    """fairlearn reports a rate with an empty (zero-weight) denominator as 0; ours says NaN
    (undefined), so where ours is NaN the denominator's weight must indeed be 0."""
    y_true, y_score, _, groups, w = data
    weighed = np.isin(groups, [g for g, total in group_weights(groups, w).items() if total > 0])
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=0, sample_weight=w)
    y_pred = (y_score >= 0.5).astype(int)
    theirs = _frame_rates(y_true[weighed], y_pred[weighed], groups[weighed], w[weighed])
    denominators = {"tpr": y_true == 1, "fnr": y_true == 1, "fpr": y_true == 0, "ppv": y_pred == 1}
    for group in result.groups:
        rows = groups == group.group
        assert group.n == rows.sum() and group.weight == pytest.approx(w[rows].sum(), abs=1e-12)
        if group.weight == 0:
            continue
        for name in ("base_rate", "selection_rate", "tpr", "fpr", "fnr", "ppv"):
            ours = getattr(group, name)
            if math.isnan(ours):
                assert w[rows & denominators[name]].sum() == 0, (group.group, name)
            else:
                assert ours == pytest.approx(float(theirs.loc[group.group, name]), abs=1e-12), (group.group, name)


@WEIGHTED_HYPOTHESIS
@given(data=weighted())
def test_weighted_auc_is_scikit_learns(data):
    y_true, y_score, _, groups, w = data
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=0, sample_weight=w)
    defined = w[y_true == 1].sum() > 0 and w[y_true == 0].sum() > 0
    assert close(result.auc, roc_auc_score(y_true, y_score, sample_weight=w) if defined else math.nan)


@WEIGHTED_HYPOTHESIS
@given(data=weighted())
def test_weighted_cross_group_accuracy_is_the_weighted_auc_of_the_pooled_pairs(data):
    """An independent oracle for the pair weight w_i * w_j: scikit-learn's weighted AUC of
    (positives of a) + (negatives of b)."""
    y_true, y_score, _, groups, w = data
    for a in "abc":
        for b in "abc":
            pooled = ((groups == a) & (y_true == 1)) | ((groups == b) & (y_true == 0))
            ours = cross_group_pairwise_accuracy(
                y_true, y_score, sensitive_features=groups, positive_group=a, negative_group=b, sample_weight=w
            )  # fmt: skip
            has_pairs = w[pooled & (y_true == 1)].sum() > 0 and w[pooled & (y_true == 0)].sum() > 0
            expected = roc_auc_score(y_true[pooled], y_score[pooled], sample_weight=w[pooled]) if has_pairs else math.nan
            assert close(ours, expected), (a, b)


# -- integer weights are repetitions, all-ones weights are no weights ----------------------
def _repeated(w: np.ndarray) -> np.ndarray:
    return np.repeat(np.arange(w.size), w.astype(int))


@WEIGHTED_HYPOTHESIS
@given(data=weighted(weights=(0.0, 1.0, 2.0, 3.0)))
def test_integer_weights_give_the_figures_of_the_repeated_rows(data):
    y_true, y_score, _, groups, w = data
    copies = _repeated(w)
    once, repeated = dict(sensitive_features=groups, sample_weight=w), dict(sensitive_features=groups[copies])
    assert close(group_pairwise_accuracy_difference(y_true, y_score, **once),
                 group_pairwise_accuracy_difference(y_true[copies], y_score[copies], **repeated))  # fmt: skip
    for n in (2, 7, 100):
        assert close(area_under_discrimination_curve(y_true, y_score, n_thresholds=n, **once),
                     area_under_discrimination_curve(y_true[copies], y_score[copies], n_thresholds=n, **repeated))  # fmt: skip
    _, ours = discrimination_curve(y_score, **once)
    _, theirs = discrimination_curve(y_score[copies], **repeated)
    assert np.allclose(ours, theirs, rtol=0, atol=1e-12, equal_nan=True)
    cut = balanced_accuracy_threshold(y_true, y_score, sample_weight=w)
    assert cut == balanced_accuracy_threshold(y_true[copies], y_score[copies])

    weighted_result = evaluate_scores(y_true, y_score, min_group_size=0, **once)
    repeated_result = evaluate_scores(y_true[copies], y_score[copies], min_group_size=0, **repeated)
    for name in OVERALL:
        ours, theirs = getattr(weighted_result, name), getattr(repeated_result, name)
        assert ours == theirs if isinstance(ours, (bool, tuple)) else close(ours, theirs), name
    repeated_groups = {group.group: group for group in repeated_result.groups}
    for group in weighted_result.groups:
        if group.weight == 0:  # repetition drops the group; weighting keeps it, empty
            assert group.group in weighted_result.zero_weight_groups and math.isnan(group.base_rate)
            continue
        assert group.weight == repeated_groups[group.group].n
        for name in PER_GROUP:
            assert close(getattr(group, name), getattr(repeated_groups[group.group], name)), (group.group, name)


@WEIGHTED_HYPOTHESIS
@given(data=weighted(weights=(1.0,), zero_a_group=False))
def test_all_ones_weights_give_the_unweighted_figures(data):
    y_true, y_score, y_pred, groups, w = data
    plain, ones = dict(sensitive_features=groups), dict(sensitive_features=groups, sample_weight=w)
    for name in FAIRLEARN_NAMED:
        assert close(getattr(metrics, name)(y_true, y_pred, **ones), getattr(metrics, name)(y_true, y_pred, **plain)), name
    gpa = group_pairwise_accuracy_difference(y_true, y_score, **ones)
    assert close(gpa, group_pairwise_accuracy_difference(y_true, y_score, **plain))
    assert close(area_under_discrimination_curve(y_true, y_score, **ones), area_under_discrimination_curve(y_true, y_score, **plain))
    assert balanced_accuracy_threshold(y_true, y_score, sample_weight=w) == balanced_accuracy_threshold(y_true, y_score)
    with_ones = evaluate_scores(y_true, y_score, min_group_size=3, **ones).to_dict()
    without = evaluate_scores(y_true, y_score, min_group_size=3, **plain).to_dict()
    assert with_ones.pop("zero_weight_groups") == []
    for group in with_ones["groups"]:
        assert group.pop("weight") == group["n"]
    for ours, theirs in _numbers(with_ones, without):
        assert close(math.nan if ours is None else ours, math.nan if theirs is None else theirs)


def _numbers(left, right):
    """Pairs of corresponding numbers of two JSON values of the same shape (and equal otherwise)."""
    if isinstance(left, dict):
        assert left.keys() == right.keys()
        return [pair for key in left for pair in _numbers(left[key], right[key])]
    if isinstance(left, list):
        assert len(left) == len(right)
        return [pair for a, b in zip(left, right) for pair in _numbers(a, b)]
    if isinstance(left, (float, int)) and not isinstance(left, bool) or left is None:
        return [(left, right)]
    assert left == right
    return []


def test_unweighted_json_keeps_its_shape_and_weighted_json_adds_the_weights():
    y_true, y_score, groups = np.array([0, 1, 1, 0, 1, 0]), np.array([0.2, 0.7, 0.6, 0.4, 0.9, 0.1]), np.array(list("aabbcc"))
    plain = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=0).to_dict()
    assert "zero_weight_groups" not in plain and "weight" not in plain["groups"][0]
    weights = [1, 3, 0, 0, 2, 2]
    weighted_json = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=0, sample_weight=weights).to_dict()
    assert weighted_json["zero_weight_groups"] == ["b"]
    assert [group["weight"] for group in weighted_json["groups"]] == [4.0, 0.0, 4.0]
    b = weighted_json["groups"][1]
    assert b["n"] == 2 and b["base_rate"] is None and b["selection_rate"] is None and b["auc"] is None
    assert weighted_json["small_groups"] == []  # small counts rows; b has weight 0, not few rows
    # a selects 3/4 at 0.5, c 2/4: the DP difference is over a and c only
    assert weighted_json["dp_difference"] == pytest.approx(0.25)
    assert json.loads(json.dumps(weighted_json, allow_nan=False)) == weighted_json


def test_min_group_size_counts_rows_not_weight():
    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b"], [40, 10])
    y_true, y_score = rng.integers(0, 2, 50), rng.random(50)
    w = np.where(groups == "b", 100.0, 1.0)  # b outweighs a, but only 10 rows back its figures
    result = evaluate_scores(y_true, y_score, sensitive_features=groups, min_group_size=30, sample_weight=w)
    assert result.small_groups == ("b",) and math.isnan(result.dp_difference)


def test_weights_change_the_figures():
    """Guards against weights accepted but ignored: the weighted figure is the figure of the
    distribution the weights describe."""
    groups, y_true = np.array(list("aaaabbbb")), np.array([1, 0, 1, 0, 1, 0, 1, 0])
    y_pred = np.array([1, 1, 0, 0, 1, 0, 0, 0])
    # a's selection rate: unweighted 2/4; rows 0 and 1 weigh 3, so (3 + 3) / (3 + 3 + 1 + 1) = 3/4
    w = np.array([3, 3, 1, 1, 1, 1, 1, 1])
    assert metrics.demographic_parity_difference(y_true, y_pred, sensitive_features=groups) == pytest.approx(0.25)
    assert metrics.demographic_parity_difference(y_true, y_pred, sensitive_features=groups, sample_weight=w) == pytest.approx(0.5)
    # the threshold: one heavy negative at 0.8 moves the best cut above it
    y_true, y_score = np.array([1, 1, 0, 0, 0]), np.array([0.9, 0.7, 0.8, 0.2, 0.1])
    assert balanced_accuracy_threshold(y_true, y_score) == pytest.approx(0.45)
    assert balanced_accuracy_threshold(y_true, y_score, sample_weight=[1, 1, 10, 1, 1]) == pytest.approx(0.85)


# -- refused weights -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "weights, fragment",
    [
        ([[1.0], [1.0], [1.0]], "sample_weight must be 1-D, got shape (3, 1)"),
        ([1.0, 1.0], "sample_weight must hold one weight per row: got 2 for 3 rows"),
        ([1.0, np.nan, 1.0], "sample_weight must contain only finite numbers"),
        ([1.0, np.inf, 1.0], "sample_weight must contain only finite numbers"),
        (["1", "1", "1"], "sample_weight must contain only finite numbers"),
        ([1.0, None, 1.0], "sample_weight must contain only finite numbers"),
        ([1.0, -0.5, 1.0], "sample_weight must not be negative, got -0.5"),
        ([0, 0, 0], "sample_weight must have a positive, finite total, got 0.0"),
        ([1e308, 1e308, 1e308], "sample_weight must have a positive, finite total, got inf"),
    ],
)
def test_bad_weights_are_refused_naming_sample_weight(weights, fragment):
    y_true, y_score, groups = [0, 1, 1], [0.1, 0.6, 0.9], ["a", "b", "a"]
    calls = [
        lambda: evaluate_scores(y_true, y_score, sensitive_features=groups, sample_weight=weights),
        lambda: metrics.demographic_parity_ratio(y_true, [0, 1, 1], sensitive_features=groups, sample_weight=weights),
        lambda: metrics.equalized_odds_difference(y_true, [0, 1, 1], sensitive_features=groups, sample_weight=weights),
        lambda: group_pairwise_accuracy_difference(y_true, y_score, sensitive_features=groups, sample_weight=weights),
        lambda: area_under_discrimination_curve(y_true, y_score, sensitive_features=groups, sample_weight=weights),
        lambda: cross_group_pairwise_accuracy(
            y_true, y_score, sensitive_features=groups, positive_group="a", negative_group="b", sample_weight=weights
        ),
        lambda: balanced_accuracy_threshold(y_true, y_score, sample_weight=weights),
        lambda: bootstrap_intervals(y_true, y_score, sensitive_features=groups, n_resamples=10, sample_weight=weights),
    ]
    for call in calls:
        with pytest.raises(ParameterError, match=re.escape(fragment)) as raised:
            call()
        assert isinstance(raised.value, ValueError) and "--" not in str(raised.value)
