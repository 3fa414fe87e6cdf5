"""Predictive and fairness metrics for scored binary classifiers (DESIGN.md section 3).

Every fairness metric here is "lower is fairer" and is an absolute max-minus-min
difference over groups, following fairlearn's conventions. A fairness metric that
needs two groups is NaN when fewer than two are available: a 0 would read as
"perfectly fair" when nothing was measured.

Group labels are compared and reported as ``str(label)``, so results stay
JSON-ready whatever type the sensitive column had.

Every metric takes ``sample_weight`` as fairlearn and scikit-learn do: frequency or
importance weights, so a metric is that of the weighted empirical distribution (a row of
weight 3 counts as three copies of it; a pair of rows enters a pairwise accuracy with the
product of their weights). A group whose rows all weigh 0 is treated as absent from the
across-group figures, as fairlearn's ``between_groups`` skips a group whose rate is
undefined. Without weights, the unweighted code runs unchanged.

This module is pure numpy/scikit-learn: it never prints, never exits and does not
import torch, so it can score any model's output.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import combinations
from typing import Any

from typing import NamedTuple

import numpy as np

from .errors import ParameterError
from .jsonable import plain

__all__ = [
    "EvaluationResult",
    "GroupMetrics",
    "area_under_discrimination_curve",
    "balanced_accuracy_threshold",
    "cross_group_pairwise_accuracy",
    "demographic_parity_difference",
    "demographic_parity_ratio",
    "discrimination_curve",
    "equalized_odds_difference",
    "equalized_odds_ratio",
    "evaluate_scores",
    "checked_sample_weight",
    "pair_weight_scale",
    "group_pairwise_accuracy_difference",
]

# User-facing error texts.
MSG_EMPTY_INPUT = "metrics need at least one row; got empty input"
MSG_NOT_1D = "y_true, y_score, y_pred and sensitive_features must be 1-D"
MSG_LENGTH_MISMATCH = (
    "y_true, y_score/y_pred and sensitive_features must have the same length"
)
MSG_Y_TRUE_NOT_BINARY = "y_true must contain only the values 0 and 1"
MSG_Y_PRED_NOT_BINARY = "y_pred must contain only the values 0 and 1"
MSG_SCORES_NOT_FINITE = "y_score must contain only finite numbers"
MSG_SCORES_OUT_OF_RANGE = "y_score must lie in [0, 1]"
MSG_N_THRESHOLDS = "n_thresholds must be an integer >= 2"
MSG_MIN_GROUP_SIZE = "min_group_size must be a non-negative integer"

# Thresholds of the discrimination curve whose area evaluate_scores reports as AUDC.
EVALUATION_AUDC_THRESHOLDS = 100


# ---------------------------------------------------------------------------
# Result objects
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class GroupMetrics:
    """Per-group summary; rates are NaN where their denominator is empty."""

    group: str
    n: int
    base_rate: float
    selection_rate: float
    tpr: float
    fpr: float
    fnr: float
    ppv: float
    """Precision: the share of the group's predicted positives that are positive."""
    auc: float
    weight: float | None = None
    """The group's total sample weight; None when no weights were given (and then left out of JSON)."""


@dataclass(frozen=True)
class EvaluationResult:
    """Everything :func:`evaluate_scores` measures on one set of scores."""

    auc: float
    accuracy: float
    balanced_accuracy: float
    gpa: float
    audc: float
    dp_difference: float
    eo_difference: float
    dp_ratio: float
    """Smallest over largest selection rate: the four-fifths rule asks for at least 0.8."""
    eo_ratio: float
    """The smaller of the TPR and FPR ratios (smallest over largest over groups)."""
    d_gpa: float
    d_audc: float
    n: int
    threshold: float
    groups: tuple[GroupMetrics, ...]
    small_groups: tuple[str, ...]
    positive_rate: float
    """Share of rows predicted positive at the threshold."""
    degenerate: bool
    """Every row is predicted the same class: a constant classifier, trivially "fair"."""
    constant_scores: bool
    """Every row has the same score: no ranking either, so GPA and AUDC are trivially 0."""
    zero_weight_groups: tuple[str, ...] = ()
    """Groups whose rows all weigh 0: listed per group, left out of GPA, AUDC, DP and EO."""

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python view that ``json.dumps(..., allow_nan=False)`` accepts. The weight
        fields appear only when weights were given, so unweighted JSON keeps its shape."""
        payload = plain(asdict(self))
        if all(group.weight is None for group in self.groups):
            del payload["zero_weight_groups"]
            for group in payload["groups"]:
                del group["weight"]
        return payload


# ---------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------


def _as_1d(values: Any) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{MSG_NOT_1D}; got shape {array.shape}")
    return array


def _check_lengths(*arrays: np.ndarray) -> None:
    lengths = [len(array) for array in arrays]
    if len(set(lengths)) != 1:
        raise ValueError(f"{MSG_LENGTH_MISMATCH}; got lengths {lengths}")
    if lengths[0] == 0:
        raise ValueError(MSG_EMPTY_INPUT)


def _as_binary(values: Any, message: str) -> np.ndarray:
    array = _as_1d(values)
    # Strings such as "1" are rejected rather than coerced: a label column read as
    # text usually means the wrong column was passed.
    if array.dtype.kind not in "biuf" or not np.isin(array, (0, 1)).all():
        raise ValueError(message)
    return array.astype(np.int64)


def _as_scores(values: Any, *, unit_interval: bool = False) -> np.ndarray:
    array = _as_1d(values)
    # Text is rejected even when it would parse ("0.5"): it signals a misread column.
    if array.dtype.kind in "USV":
        raise ValueError(MSG_SCORES_NOT_FINITE)
    try:
        array = array.astype(np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(MSG_SCORES_NOT_FINITE) from error
    if not np.isfinite(array).all():
        raise ValueError(MSG_SCORES_NOT_FINITE)
    if unit_interval and ((array < 0).any() or (array > 1).any()):
        raise ValueError(MSG_SCORES_OUT_OF_RANGE)
    return array


def checked_sample_weight(sample_weight: Any, n_rows: int) -> np.ndarray | None:
    """The one check of ``sample_weight``: None stays None (the unweighted code path),
    anything else must be one finite, non-negative number per row with a positive total."""
    if sample_weight is None:
        return None
    array = np.asarray(sample_weight)
    if array.ndim != 1:
        raise ParameterError("{sample_weight} must be 1-D, got shape {shape}", shape=array.shape)
    if array.size != n_rows:
        raise ParameterError("{sample_weight} must hold one weight per row: got {got} for {rows} rows", got=array.size, rows=n_rows)
    # Text is refused even when it would parse, as for y_score: it signals a misread column.
    if array.dtype.kind not in "biuf" or not np.isfinite(array.astype(np.float64)).all():
        raise ParameterError("{sample_weight} must contain only finite numbers")
    array = array.astype(np.float64)
    if (array < 0).any():
        raise ParameterError("{sample_weight} must not be negative, got {got}", got=float(array.min()))
    total = array.sum()
    if not 0 < total < math.inf:
        raise ParameterError("{sample_weight} must have a positive, finite total, got {got}", got=float(total))
    return array


def _encode_groups(sensitive_features: Any) -> tuple[np.ndarray, np.ndarray]:
    """Return (sorted unique str labels, integer code of each row into them)."""
    labels = _as_1d(sensitive_features).astype(str)
    return np.unique(labels, return_inverse=True)


def _check_n_thresholds(n_thresholds: int) -> None:
    is_integer = isinstance(n_thresholds, (int, np.integer)) and not isinstance(n_thresholds, bool)
    if not is_integer or n_thresholds < 2:
        raise ValueError(MSG_N_THRESHOLDS)


# ---------------------------------------------------------------------------
# Core computations on validated arrays and integer group codes
# ---------------------------------------------------------------------------


def _pairwise_accuracy(positive_scores: np.ndarray, negative_scores: np.ndarray) -> float:
    """P(positive outscores negative) over all pairs, ties 1/2, in O(n log n)."""
    if positive_scores.size == 0 or negative_scores.size == 0:
        return math.nan
    negatives = np.sort(negative_scores)
    below = np.searchsorted(negatives, positive_scores, side="left")
    not_above = np.searchsorted(negatives, positive_scores, side="right")
    # Count in half-pairs so the numerator stays an exact integer: 2*below + ties.
    half_wins = int(np.sum(below + not_above, dtype=np.int64))
    return half_wins / (2 * positive_scores.size * negatives.size)


def pair_weight_scale(*weights: np.ndarray) -> float:
    """A power of two that brings the largest weight near 1: products of two weights then
    neither overflow (weights of 1e154 would) nor lose exactness (scaling by a power of two
    is exact), and pairwise accuracies, ratios of such products, do not change."""
    largest = max((float(w.max()) for w in weights if w.size), default=0.0)
    return 1.0 if largest == 0.0 else float(2.0 ** -np.frexp(largest)[1])


def _weighted_pairwise_accuracy(
    positive_scores: np.ndarray, positive_weights: np.ndarray, negative_scores: np.ndarray, negative_weights: np.ndarray
) -> float:
    """_pairwise_accuracy with each (positive, negative) pair weighted by the product of
    their weights; sums of integer weights stay exact, so integer weights give the figure
    of the repeated rows."""
    scale = pair_weight_scale(positive_weights, negative_weights)
    positive_weights, negative_weights = positive_weights * scale, negative_weights * scale
    positive_total, negative_total = positive_weights.sum(), negative_weights.sum()
    if positive_total == 0 or negative_total == 0:
        return math.nan
    order = np.argsort(negative_scores, kind="stable")
    negatives = negative_scores[order]
    cumulative = np.concatenate([[0.0], np.cumsum(negative_weights[order])])
    below = cumulative[np.searchsorted(negatives, positive_scores, side="left")]
    not_above = cumulative[np.searchsorted(negatives, positive_scores, side="right")]
    return float(np.dot(positive_weights, below + not_above) / (2 * positive_total * negative_total))


def _pairwise_accuracy_of(y_score: np.ndarray, weights: np.ndarray | None, positives: np.ndarray, negatives: np.ndarray) -> float:
    """Pairwise accuracy of the rows selected by the masks ``positives`` and ``negatives``."""
    if weights is None:
        return _pairwise_accuracy(y_score[positives], y_score[negatives])
    return _weighted_pairwise_accuracy(y_score[positives], weights[positives], y_score[negatives], weights[negatives])


def _gpa(y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None) -> float:
    if n_groups < 2:
        return math.nan
    positives = [(codes == g) & (y_true == 1) for g in range(n_groups)]
    negatives = [(codes == g) & (y_true == 0) for g in range(n_groups)]
    gaps = [
        abs(_pairwise_accuracy_of(y_score, weights, positives[a], negatives[b])
            - _pairwise_accuracy_of(y_score, weights, positives[b], negatives[a]))
        for a, b in combinations(range(n_groups), 2)
    ]
    # A pair is skipped only when one of its directions has no pairs at all (a group
    # without positives or negatives); dropping the whole metric for that would lose
    # every other pair's information.
    estimable = [gap for gap in gaps if not math.isnan(gap)]
    return max(estimable) if estimable else math.nan


def _share_at_or_above(scores: np.ndarray, weights: np.ndarray | None, thresholds: np.ndarray) -> np.ndarray:
    """P(score >= t) for each threshold t, under the rows' weights."""
    if weights is None:
        scores = np.sort(scores)
        # searchsorted(side="left") counts scores < t, so the rest are >= t.
        return (scores.size - np.searchsorted(scores, thresholds, side="left")) / scores.size
    order = np.argsort(scores, kind="stable")
    cumulative = np.concatenate([[0.0], np.cumsum(weights[order])])
    below = cumulative[np.searchsorted(scores[order], thresholds, side="left")]
    return (cumulative[-1] - below) / cumulative[-1]


def _discrimination(
    y_score: np.ndarray, codes: np.ndarray, n_groups: int, thresholds: np.ndarray, weights: np.ndarray | None = None
) -> np.ndarray:
    if n_groups < 2:
        return np.full(thresholds.shape, math.nan)
    rates = np.empty((n_groups, thresholds.size))
    for g in range(n_groups):
        in_group = codes == g
        rates[g] = _share_at_or_above(y_score[in_group], _weights_of(weights, in_group), thresholds)
    return rates.max(axis=0) - rates.min(axis=0)


# The helpers named "..._over_last_axis" hold a rule once for both callers: the metrics of
# one table (1-D input) and the bootstrap (uncertainty.py), which has a row per resample.


def _trapezoid_over_last_axis(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    # Written out because np.trapz/np.trapezoid changed name across numpy versions.
    return np.sum((y[..., 1:] + y[..., :-1]) * np.diff(x), axis=-1) / 2


def _trapezoid(y: np.ndarray, x: np.ndarray) -> float:
    return float(_trapezoid_over_last_axis(y, x))


def _audc(y_score: np.ndarray, codes: np.ndarray, n_groups: int, n_thresholds: int, weights: np.ndarray | None = None) -> float:
    thresholds = np.linspace(0.0, 1.0, n_thresholds)
    return _trapezoid(_discrimination(y_score, codes, n_groups, thresholds, weights), thresholds)


# A NaN entry is a group absent from that row (a bootstrap resample that drew only rows of
# weight 0 from it) and is skipped, as fairlearn's between_groups skips an undefined rate.


def _spread_over_last_axis(values: np.ndarray) -> np.ndarray:
    return np.fmax.reduce(values, axis=-1) - np.fmin.reduce(values, axis=-1)


def _spread(values: np.ndarray) -> float:
    return float(_spread_over_last_axis(values))


def _ratio_over_last_axis(values: np.ndarray) -> np.ndarray:
    """Smallest over largest, as fairlearn's ``ratio()``: 0/0 (every rate 0) is NaN."""
    largest = np.fmax.reduce(values, axis=-1)
    return np.divide(np.fmin.reduce(values, axis=-1), largest, out=np.full(largest.shape, math.nan), where=largest != 0)


def _ratio(values: np.ndarray) -> float:
    return float(_ratio_over_last_axis(values))


def _worst_ratio(tpr_ratio, fpr_ratio):
    """fairlearn's worst case is Python's min over (TPR ratio, FPR ratio), in that order: a
    NaN TPR ratio (no group has a true positive) makes it NaN, a NaN FPR ratio does not.
    Element-wise on arrays."""
    return np.where(fpr_ratio < tpr_ratio, fpr_ratio, tpr_ratio)


def _weighted(values: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    return values if weights is None else values * weights


def _weights_of(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[rows]


def _selection_rates(y_pred: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None) -> np.ndarray:
    counts = np.bincount(codes, weights=weights, minlength=n_groups)
    return np.bincount(codes, weights=_weighted(y_pred, weights), minlength=n_groups) / counts


def _rates_given(
    y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int, label: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Per group, P(predicted 1 | y = label): the TPR for label 1, the FPR for label 0."""
    mask = y_true == label
    in_class = _weights_of(weights, mask)
    total = np.bincount(codes[mask], weights=in_class, minlength=n_groups)
    hits = np.bincount(codes[mask], weights=_weighted(y_pred[mask], in_class), minlength=n_groups)
    # fairlearn (via sklearn's normalised confusion matrix) counts a rate with an empty
    # denominator as 0, and these metrics promise fairlearn's numbers.
    return np.divide(hits, total, out=np.zeros(n_groups), where=total > 0)


def _dp_difference(y_pred: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None) -> float:
    return _spread(_selection_rates(y_pred, codes, n_groups, weights)) if n_groups >= 2 else math.nan


def _dp_ratio(y_pred: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None) -> float:
    return _ratio(_selection_rates(y_pred, codes, n_groups, weights)) if n_groups >= 2 else math.nan


def _eo_difference(
    y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None
) -> float:
    if n_groups < 2:
        return math.nan
    return max(_spread(_rates_given(y_true, y_pred, codes, n_groups, label, weights)) for label in (1, 0))


def _eo_ratio(
    y_true: np.ndarray, y_pred: np.ndarray, codes: np.ndarray, n_groups: int, weights: np.ndarray | None = None
) -> float:
    if n_groups < 2:
        return math.nan
    tpr_ratio, fpr_ratio = (_ratio(_rates_given(y_true, y_pred, codes, n_groups, label, weights)) for label in (1, 0))
    return float(_worst_ratio(tpr_ratio, fpr_ratio))


def _safe_auc(y_true: np.ndarray, y_score: np.ndarray, weights: np.ndarray | None = None) -> float:
    # sklearn.metrics imports scipy.stats (0.4 s of CPU): imported here, a command that
    # computes no AUC (train, predict) never pays it (imports.py).
    from sklearn.metrics import roc_auc_score

    if weights is None:
        if np.unique(y_true).size < 2:
            return math.nan
        return float(roc_auc_score(y_true, y_score))
    # A class present only with weight 0 is absent from the weighted distribution.
    if not (weights[y_true == 1].sum() > 0 and weights[y_true == 0].sum() > 0):
        return math.nan
    return float(roc_auc_score(y_true, y_score, sample_weight=weights))


def _rate(numerator_mask: np.ndarray, denominator_mask: np.ndarray, weights: np.ndarray | None = None) -> float:
    if weights is None:
        total = int(denominator_mask.sum())
        return int((numerator_mask & denominator_mask).sum()) / total if total else math.nan
    total = weights[denominator_mask].sum()
    return float(weights[numerator_mask & denominator_mask].sum() / total) if total > 0 else math.nan


def _mean(values: np.ndarray, weights: np.ndarray | None) -> float:
    return float(values.mean()) if weights is None else float(np.dot(values, weights) / weights.sum())


class _GroupSelection(NamedTuple):
    """Which groups enter the across-group figures, and those groups' rows renumbered."""

    small: np.ndarray
    """Per group: fewer rows than min_group_size."""
    weightless: np.ndarray
    """Per group: every row weighs 0 (all False without weights)."""
    rows: np.ndarray
    """Per row: its group enters."""
    codes: np.ndarray
    """The entering rows' groups, renumbered 0..n-1."""
    n: int


def _select_groups(codes: np.ndarray, n_groups: int, min_group_size: int = 0, weights: np.ndarray | None = None) -> _GroupSelection:
    small = np.bincount(codes, minlength=n_groups) < min_group_size
    weightless = np.zeros(n_groups, dtype=bool) if weights is None else np.bincount(codes, weights=weights, minlength=n_groups) == 0
    entering = ~(small | weightless)
    rows = entering[codes]
    return _GroupSelection(small, weightless, rows, np.cumsum(entering)[codes[rows]] - 1, int(entering.sum()))


# ---------------------------------------------------------------------------
# Public metrics
# ---------------------------------------------------------------------------


def cross_group_pairwise_accuracy(
    y_true, y_score, *, sensitive_features, positive_group, negative_group, sample_weight=None
) -> float:
    """A(a>b): how often a positive of group a outscores a negative of group b.

    Ties count 1/2, so with a == b this is the group's ROC AUC. Groups are matched
    on ``str(label)``. NaN if group a has no positives or group b no negatives (of
    positive weight). With ``sample_weight`` a pair counts with the product of its
    two rows' weights.
    """
    y_true = _as_binary(y_true, MSG_Y_TRUE_NOT_BINARY)
    y_score = _as_scores(y_score)
    labels = _as_1d(sensitive_features).astype(str)
    _check_lengths(y_true, y_score, labels)
    weights = checked_sample_weight(sample_weight, y_true.size)
    positives = (labels == str(positive_group)) & (y_true == 1)
    negatives = (labels == str(negative_group)) & (y_true == 0)
    return _pairwise_accuracy_of(y_score, weights, positives, negatives)


def _grouped(sensitive_features, sample_weight, *arrays: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, int, np.ndarray | None]:
    """(arrays, group codes, group count, weights) on the rows of groups with positive
    weight: a group whose rows all weigh 0 is absent from the weighted distribution."""
    groups, codes = _encode_groups(sensitive_features)
    _check_lengths(*arrays, codes)
    weights = checked_sample_weight(sample_weight, codes.size)
    if weights is None:
        return list(arrays), codes, groups.size, None
    selection = _select_groups(codes, groups.size, weights=weights)
    return [array[selection.rows] for array in arrays], selection.codes, selection.n, _weights_of(weights, selection.rows)


def group_pairwise_accuracy_difference(y_true, y_score, *, sensitive_features, sample_weight=None) -> float:
    """GPA: max over group pairs {a, b} of |A(a>b) - A(b>a)| (Narasimhan et al. 2020).

    Pairs where either direction has no pairs to compare are skipped; NaN if fewer
    than two groups or no pair is estimable. With ``sample_weight`` a pair of rows
    counts with the product of their weights.
    """
    y_true = _as_binary(y_true, MSG_Y_TRUE_NOT_BINARY)
    y_score = _as_scores(y_score)
    (y_true, y_score), codes, n_groups, weights = _grouped(sensitive_features, sample_weight, y_true, y_score)
    return _gpa(y_true, y_score, codes, n_groups, weights)


def discrimination_curve(
    y_score, *, sensitive_features, n_thresholds=100, sample_weight=None
) -> tuple[np.ndarray, np.ndarray]:
    """(thresholds, disc) with disc(t) = max - min over groups of P(score >= t | group).

    Thresholds are ``np.linspace(0, 1, n_thresholds)``; disc is all NaN with fewer
    than two groups (of positive weight). With ``sample_weight`` the shares are weighted.
    """
    _check_n_thresholds(n_thresholds)
    y_score = _as_scores(y_score, unit_interval=True)
    (y_score,), codes, n_groups, weights = _grouped(sensitive_features, sample_weight, y_score)
    thresholds = np.linspace(0.0, 1.0, n_thresholds)
    return thresholds, _discrimination(y_score, codes, n_groups, thresholds, weights)


def area_under_discrimination_curve(y_true, y_score, *, sensitive_features, n_thresholds=100, sample_weight=None) -> float:
    """AUDC: trapezoid-rule area under :func:`discrimination_curve`.

    This follows the paper's text (equispaced thresholds in [0, 1]); the authors'
    code integrated over ROC thresholds instead. ``y_true`` is validated but, like the
    labels in fairlearn's demographic parity, does not enter the value: the signature is
    fairlearn's ``(y_true, y_score, *, sensitive_features)``.
    """
    y_true = _as_binary(y_true, MSG_Y_TRUE_NOT_BINARY)
    _check_lengths(y_true, _as_1d(y_score))
    thresholds, disc = discrimination_curve(
        y_score, sensitive_features=sensitive_features, n_thresholds=n_thresholds, sample_weight=sample_weight
    )
    return _trapezoid(disc, thresholds)


def _predictions(
    y_true, y_pred, sensitive_features, sample_weight
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray | None]:
    """Validated 0/1 labels and predictions, each row's group code, the group count and the
    weights, on the rows of groups with positive weight."""
    y_true = _as_binary(y_true, MSG_Y_TRUE_NOT_BINARY)
    y_pred = _as_binary(y_pred, MSG_Y_PRED_NOT_BINARY)
    (y_true, y_pred), codes, n_groups, weights = _grouped(sensitive_features, sample_weight, y_true, y_pred)
    return y_true, y_pred, codes, n_groups, weights


def demographic_parity_difference(y_true, y_pred, *, sensitive_features, sample_weight=None) -> float:
    """Max minus min selection rate over groups.

    Equals ``fairlearn.metrics.demographic_parity_difference`` (between_groups)
    with two or more groups, ``sample_weight`` included; with one group fairlearn
    reports 0, this reports NaN. ``y_true`` is validated but, as in fairlearn, does
    not enter the value.
    """
    y_true, y_pred, codes, n_groups, weights = _predictions(y_true, y_pred, sensitive_features, sample_weight)
    return _dp_difference(y_pred, codes, n_groups, weights)


def demographic_parity_ratio(y_true, y_pred, *, sensitive_features, sample_weight=None) -> float:
    """Smallest over largest selection rate over groups (the four-fifths rule asks >= 0.8).

    Equals ``fairlearn.metrics.demographic_parity_ratio`` (between_groups) with two or
    more groups, NaN where every group's rate is 0 as there; with one group: NaN.
    """
    y_true, y_pred, codes, n_groups, weights = _predictions(y_true, y_pred, sensitive_features, sample_weight)
    return _dp_ratio(y_pred, codes, n_groups, weights)


def equalized_odds_ratio(y_true, y_pred, *, sensitive_features, sample_weight=None) -> float:
    """The smaller of the TPR ratio and the FPR ratio (smallest over largest over groups).

    Equals fairlearn's default ``equalized_odds_ratio`` (between_groups, worst_case),
    its zero and NaN conventions included; with one group: NaN.
    """
    y_true, y_pred, codes, n_groups, weights = _predictions(y_true, y_pred, sensitive_features, sample_weight)
    return _eo_ratio(y_true, y_pred, codes, n_groups, weights)


def equalized_odds_difference(y_true, y_pred, *, sensitive_features, sample_weight=None) -> float:
    """Larger of the TPR and FPR max-minus-min differences over groups.

    Equals fairlearn's default ``equalized_odds_difference`` (between_groups,
    worst_case) with two or more groups, including its convention that a group
    without positives (negatives) has TPR (FPR) 0. With one group: NaN, not 0.
    """
    y_true, y_pred, codes, n_groups, weights = _predictions(y_true, y_pred, sensitive_features, sample_weight)
    return _eo_difference(y_true, y_pred, codes, n_groups, weights)


def _group_metrics(
    label: str, y_true: np.ndarray, y_score: np.ndarray, y_pred: np.ndarray, weights: np.ndarray | None
) -> GroupMetrics:
    positive = y_true == 1
    selected = y_pred == 1
    everyone = np.ones(y_true.size, dtype=bool)
    return GroupMetrics(
        group=label,
        n=int(y_true.size),
        base_rate=float(positive.mean()) if weights is None else _rate(positive, everyone, weights),
        selection_rate=float(selected.mean()) if weights is None else _rate(selected, everyone, weights),
        tpr=_rate(selected, positive, weights),
        fpr=_rate(selected, ~positive, weights),
        fnr=_rate(~selected, positive, weights),
        ppv=_rate(positive, selected, weights),
        auc=_safe_auc(y_true, y_score, weights),
        weight=None if weights is None else float(weights.sum()),
    )


def balanced_accuracy_threshold(y_true, y_score, sample_weight=None) -> float:
    """The score cut that maximises balanced accuracy, (TPR + TNR) / 2, on these rows.

    Rows with ``y_score >= cut`` are predicted positive. Cuts lie halfway between
    consecutive distinct scores (or just outside their range), so the rule does not
    hinge on a score that sits exactly on the cut; among equally good cuts, the one
    nearest 0.5 wins. With a single class the result is 0.5. With ``sample_weight``
    the rates are weighted and rows of weight 0 are left out (as if not there).
    """
    y_true = _as_binary(y_true, MSG_Y_TRUE_NOT_BINARY)
    y_score = _as_scores(y_score, unit_interval=True)
    _check_lengths(y_true, y_score)
    weights = checked_sample_weight(sample_weight, y_true.size)
    if weights is not None:
        present = weights > 0
        y_true, y_score, weights = y_true[present], y_score[present], weights[present]
    positive_weight = _weighted(y_true, weights)
    positives = int(y_true.sum()) if weights is None else positive_weight.sum()
    negatives = int(y_true.size - y_true.sum()) if weights is None else weights.sum() - positives
    if positives == 0 or negatives == 0:
        return 0.5
    values, inverse = np.unique(y_score, return_inverse=True)
    positives_at = np.bincount(inverse, weights=positive_weight, minlength=values.size)
    negatives_at = np.bincount(inverse, weights=weights, minlength=values.size) - positives_at
    # Cut k predicts positive the scores values[k:], k = 0..len(values).
    true_positives = np.concatenate([np.cumsum(positives_at[::-1])[::-1], [0.0]])
    true_negatives = np.concatenate([[0.0], np.cumsum(negatives_at)])
    balanced = (true_positives / positives + true_negatives / negatives) / 2
    cuts = np.concatenate([values[:1], halfway_cuts(values), [np.nextafter(values[-1], np.inf)]])
    return best_cut(balanced, cuts)


def halfway_cuts(values: np.ndarray) -> np.ndarray:
    """The cuts between consecutive distinct scores ``values`` (sorted): halfway."""
    # Halfway between two adjacent doubles rounds to one of them; the upper one keeps the cut
    # off the lower score, which it must classify negative.
    halfway = (values[:-1] + values[1:]) / 2
    return np.where(halfway > values[:-1], halfway, values[1:])


def best_cut(balanced: np.ndarray, cuts: np.ndarray) -> float:
    """Of ``cuts`` and their balanced accuracies, the best; among equally good ones (to
    1e-12), the one nearest 0.5."""
    best = np.flatnonzero(balanced >= balanced.max() - 1e-12)
    return float(min(cuts[best], key=lambda cut: (abs(cut - 0.5), cut)))


def _check_min_group_size(min_group_size) -> None:
    if (
        isinstance(min_group_size, bool)
        or not isinstance(min_group_size, (int, np.integer))
        or min_group_size < 0
    ):
        raise ValueError(MSG_MIN_GROUP_SIZE)


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, weights: np.ndarray | None = None) -> float:
    positive = y_true == 1
    correct = y_pred == y_true
    # Mean recall over the classes present, which is what sklearn's
    # balanced_accuracy_score returns (without its warning) when one class is absent.
    class_recalls = [_rate(correct, positive, weights), _rate(correct, ~positive, weights)]
    return float(np.mean([r for r in class_recalls if not math.isnan(r)]))


def _scored_rows(
    y_true, y_score, sensitive_features, min_group_size, sample_weight
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """The checked input of evaluate_scores (and of the bootstrap of its figures): labels,
    scores in [0, 1], the sorted group labels, each row's group code, and the weights."""
    _check_min_group_size(min_group_size)
    y_true = _as_binary(y_true, MSG_Y_TRUE_NOT_BINARY)
    y_score = _as_scores(y_score, unit_interval=True)
    groups, codes = _encode_groups(sensitive_features)
    _check_lengths(y_true, y_score, codes)
    return y_true, y_score, groups, codes, checked_sample_weight(sample_weight, y_true.size)


def _across_groups(
    y_true: np.ndarray, y_score: np.ndarray, y_pred: np.ndarray, selection: _GroupSelection, weights: np.ndarray | None
) -> dict[str, float]:
    """GPA, AUDC, DP and EO on the rows of the groups ``selection`` lets in."""
    rows, codes, n = selection.rows, selection.codes, selection.n
    y_true, y_score, y_pred = y_true[rows], y_score[rows], y_pred[rows]
    weights = _weights_of(weights, rows)
    return {
        "gpa": _gpa(y_true, y_score, codes, n, weights),
        "audc": _audc(y_score, codes, n, EVALUATION_AUDC_THRESHOLDS, weights),
        "dp_difference": _dp_difference(y_pred, codes, n, weights),
        "eo_difference": _eo_difference(y_true, y_pred, codes, n, weights),
        "dp_ratio": _dp_ratio(y_pred, codes, n, weights),
        "eo_ratio": _eo_ratio(y_true, y_pred, codes, n, weights),
    }


def evaluate_scores(
    y_true, y_score, *, sensitive_features, threshold=0.5, min_group_size=30, sample_weight=None
) -> EvaluationResult:
    """Score a classifier's probabilities: accuracy, fairness and trade-off distances.

    Predictions are ``y_score >= threshold``. Groups with fewer than
    ``min_group_size`` rows are reported per group but left out of GPA, AUDC, DP
    and EO (their estimates are too noisy to drive a max over groups), which are
    computed on the remaining groups' rows only and are NaN if fewer than two
    remain. ``d_gpa = (1 - auc) + gpa`` and ``d_audc = (1 - auc) + audc`` are the
    L1 distances to the ideal point (AUC 1, unfairness 0).

    With ``sample_weight`` every figure is that of the weighted rows; ``n`` and
    ``min_group_size`` still count rows (how many observations back an estimate), each
    group reports its total ``weight``, and groups whose rows all weigh 0 are listed
    in ``zero_weight_groups`` and left out of the across-group figures.
    """
    y_true, y_score, groups, codes, weights = _scored_rows(y_true, y_score, sensitive_features, min_group_size, sample_weight)
    y_pred = (y_score >= threshold).astype(np.int64)

    per_group = tuple(
        _group_metrics(str(label), y_true[rows], y_score[rows], y_pred[rows], _weights_of(weights, rows))
        for label, rows in zip(groups, (codes == g for g in range(groups.size)))
    )
    selection = _select_groups(codes, groups.size, min_group_size, weights)
    across = _across_groups(y_true, y_score, y_pred, selection, weights)
    auc = _safe_auc(y_true, y_score, weights)
    present = slice(None) if weights is None else weights > 0
    return EvaluationResult(
        auc=auc,
        accuracy=_mean(y_pred == y_true, weights),
        balanced_accuracy=_balanced_accuracy(y_true, y_pred, weights),
        **across,
        d_gpa=(1.0 - auc) + across["gpa"],
        d_audc=(1.0 - auc) + across["audc"],
        n=int(y_true.size),
        threshold=float(threshold),
        groups=per_group,
        small_groups=tuple(str(label) for label in groups[selection.small]),
        positive_rate=_mean(y_pred, weights),
        degenerate=bool(np.unique(y_pred[present]).size < 2),
        constant_scores=bool(np.ptp(y_score[present]) == 0),
        zero_weight_groups=tuple(str(label) for label in groups[selection.weightless]),
    )
