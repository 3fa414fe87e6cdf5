"""Bootstrap confidence intervals for every metric :func:`~sqnn_cli.metrics.evaluate_scores`
reports, overall and per group.

Resampling is stratified by sensitive group: each resample draws, with replacement, as many
rows from each group as that group has, so the group sizes (and which groups are too small to
enter the fairness metrics) are those of the data, and a small group keeps its share instead
of vanishing from some resamples. A small group's intervals come out wide, which is the point.

Intervals are percentile intervals. BCa would need a jackknife (one evaluation per left-out
row: 50,000 evaluations for a 50,000-row table) and its acceleration is unstable for
max-over-groups statistics such as the DP difference; the percentile interval stays inside
the metric's range (a rate's interval inside [0, 1]) and is what fairlearn's
``MetricFrame(n_boot=..., ci_quantiles=...)`` computes, so the two can be compared.

A metric can be undefined in a resample where it was defined on the data (a small group's
TPR when the resample drew none of its few positives). Quantiles are taken over the
resamples where it is defined, and the count of the others is reported with the interval,
never hidden; a metric undefined in every resample has no interval (None).

Vectorised: a resample is a row of draw counts, one column per row of the table (sorted
by score), and every metric is a weighted sum, a matrix product or a cumulative sum over
those rows, for a block of resamples at once. With ``sample_weight`` a drawn row carries its
weight: the resample's row weights are its draw counts times the sample weights, and its
metrics are the weighted metrics of the drawn rows. A group that a resample drew only rows
of weight 0 from is absent from that resample's across-group figures, as a group of weight 0
is from :func:`~sqnn_cli.metrics.evaluate_scores`'s. Nothing here prints or exits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np

from .errors import ParameterError
from .limits import MAX_BOOTSTRAP
from .jsonable import plain
from .metrics import (
    EVALUATION_AUDC_THRESHOLDS,
    _ratio_over_last_axis,
    _scored_rows,
    _select_groups,
    _spread_over_last_axis,
    _trapezoid_over_last_axis,
    _worst_ratio,
    pair_weight_scale,
)

__all__ = ["BootstrapIntervals", "BootstrapSettings", "bootstrap_intervals", "OVERALL_METRICS", "GROUP_METRICS"]

OVERALL_METRICS = (
    "auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference", "eo_difference",
    "dp_ratio", "eo_ratio", "d_gpa", "d_audc",
)  # fmt: skip
GROUP_METRICS = ("base_rate", "selection_rate", "tpr", "fpr", "fnr", "ppv", "auc")

# Draw counts held at once (resamples x rows): ~32 MB of float64, whatever the table's size.
_CELLS_PER_BLOCK = 4_000_000


@dataclass(frozen=True)
class BootstrapIntervals:
    """Percentile intervals at ``confidence_level`` from ``n_resamples`` stratified resamples."""

    confidence_level: float
    n_resamples: int
    seed: int
    metrics: dict[str, tuple[float, float] | None]
    """Overall metric name -> (lower, upper); None where no resample defines it."""
    groups: dict[str, dict[str, tuple[float, float] | None]]
    """Group label -> per-group metric name -> (lower, upper) or None."""
    undefined: dict[str, int] = field(default_factory=dict)
    """Overall metric -> resamples in which it was undefined (only those with any)."""
    groups_undefined: dict[str, dict[str, int]] = field(default_factory=dict)
    """Group label -> per-group metric -> resamples in which it was undefined (only those with any)."""

    def to_dict(self) -> dict[str, Any]:
        """The overall part of the JSON; :meth:`group_dict` gives each group's part."""
        return plain({
            "ci": self.confidence_level,
            "bootstrap": self.n_resamples,
            "bootstrap_seed": self.seed,
            "interval_method": "percentile, resampled within each sensitive group",
            "intervals": {name: list(interval) if interval else None for name, interval in self.metrics.items()},
            "undefined_resamples": self.undefined,
        })

    def group_dict(self, group: str) -> dict[str, Any]:
        return plain({
            "intervals": {name: list(interval) if interval else None for name, interval in self.groups[group].items()},
            "undefined_resamples": self.groups_undefined.get(group, {}),
        })


def _is_integer(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _check_settings(confidence_level: float, n_resamples: int, seed: int) -> None:
    if isinstance(confidence_level, bool) or not isinstance(confidence_level, (int, float)) or not 0 < confidence_level < 1:
        raise ParameterError("{confidence_level} must lie strictly between 0 and 1, got {got}", got=confidence_level)
    if not _is_integer(n_resamples) or not 2 <= n_resamples <= MAX_BOOTSTRAP:
        raise ParameterError("{n_resamples} must be an integer from 2 to {most}, got {got}", most=MAX_BOOTSTRAP, got=n_resamples)
    if not _is_integer(seed) or seed < 0:
        raise ParameterError("{seed} must be a non-negative integer, got {got}", got=seed)


@dataclass(frozen=True)
class BootstrapSettings:
    """How :func:`bootstrap_intervals` resamples (its keyword arguments of the same names)."""

    confidence_level: float = 0.95
    n_resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        _check_settings(self.confidence_level, self.n_resamples, self.seed)


@dataclass(frozen=True)
class _Table:
    """The rows sorted by score, with what every resample's metrics are computed from."""

    score: np.ndarray
    y: np.ndarray
    group_columns: tuple[np.ndarray, ...]
    """Per group, its rows' positions in the sorted table (ascending, hence by score)."""
    kept: tuple[int, ...]
    """The groups large enough (and of positive weight) to enter the fairness metrics."""
    indicators: np.ndarray
    """(rows, 4 x groups): in group g, y = 1; predicted 1; both; always 1 (the group's size)."""
    sample_weight: np.ndarray | None = None
    """Each sorted row's sample weight; None when unweighted."""


def _table(
    y_true: np.ndarray, y_score: np.ndarray, codes: np.ndarray, n_groups: int, threshold: float, min_group_size: int,
    sample_weight: np.ndarray | None = None,
) -> _Table:  # fmt: skip
    order = np.argsort(y_score, kind="stable")
    score, y, codes = y_score[order], y_true[order].astype(np.float64), codes[order]
    sample_weight = None if sample_weight is None else sample_weight[order]
    predicted = (score >= threshold).astype(np.float64)
    selection = _select_groups(codes, n_groups, min_group_size, sample_weight)
    member = (codes[:, None] == np.arange(n_groups)).astype(np.float64)
    indicators = np.concatenate([member * y[:, None], member * predicted[:, None], member * (y * predicted)[:, None], member], 1)
    return _Table(
        score=score,
        y=y,
        group_columns=tuple(np.flatnonzero(codes == g) for g in range(n_groups)),
        kept=tuple(int(g) for g in np.flatnonzero(~(selection.small | selection.weightless))),
        indicators=indicators,
        sample_weight=sample_weight,
    )


def _draw_counts(table: _Table, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(n_resamples, rows): how often each row is drawn; each group's rows are drawn from
    that group only, as many times as the group has rows."""
    n_rows = table.score.size
    offsets = (np.arange(n_resamples) * n_rows)[:, None]
    drawn = [
        (columns[rng.integers(0, columns.size, size=(n_resamples, columns.size))] + offsets).ravel()
        for columns in table.group_columns
    ]
    counts = np.bincount(np.concatenate(drawn), minlength=n_resamples * n_rows)
    return counts.reshape(n_resamples, n_rows).astype(np.float64)


def _running_totals(weights: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """(resamples, len(columns) + 1): per resample, the weight of the first k of ``columns``."""
    return np.concatenate([np.zeros((weights.shape[0], 1)), np.cumsum(weights[:, columns], axis=1)], axis=1)


def _pairwise_accuracies(weights: np.ndarray, table: _Table, positives: np.ndarray, negatives: np.ndarray) -> np.ndarray:
    """Per resample, how often a drawn positive at ``positives`` outscores a drawn negative
    at ``negatives`` (columns of the sorted table), ties 1/2: the rule of metrics._pairwise_accuracy."""
    weights = weights * pair_weight_scale(weights)
    negative_scores = table.score[negatives]
    below = np.searchsorted(negative_scores, table.score[positives], side="left")
    not_above = np.searchsorted(negative_scores, table.score[positives], side="right")
    cumulative = _running_totals(weights, negatives)
    positive_weights = weights[:, positives]
    half_wins = np.sum(positive_weights * (cumulative[:, below] + cumulative[:, not_above]), axis=1)
    pairs = positive_weights.sum(axis=1) * cumulative[:, -1]
    return np.divide(half_wins, 2 * pairs, out=np.full(pairs.shape, math.nan), where=pairs > 0)


def _score_metrics(weights: np.ndarray, table: _Table) -> dict[str, np.ndarray]:
    """AUC overall and per group, GPA and AUDC for each resample (a row of ``weights``)."""
    in_class = [(columns[table.y[columns] == 1], columns[table.y[columns] == 0]) for columns in table.group_columns]
    group_auc = np.stack([_pairwise_accuracies(weights, table, pos, neg) for pos, neg in in_class], axis=1)
    def outscores(a: int, b: int) -> np.ndarray:
        return _pairwise_accuracies(weights, table, in_class[a][0], in_class[b][1])

    gaps = [np.abs(outscores(a, b) - outscores(b, a)) for a, b in combinations(table.kept, 2)]
    # A pair is skipped where it cannot be estimated, as metrics._gpa does; fmax ignores NaN.
    gpa = np.fmax.reduce(np.stack(gaps, axis=1), axis=1) if gaps else np.full(weights.shape[0], math.nan)
    thresholds = np.linspace(0.0, 1.0, EVALUATION_AUDC_THRESHOLDS)
    audc = np.full(weights.shape[0], math.nan)
    if len(table.kept) >= 2:
        rates, sizes = [], []
        for g in table.kept:
            columns = table.group_columns[g]
            cumulative = _running_totals(weights, columns)
            below = cumulative[:, np.searchsorted(table.score[columns], thresholds, side="left")]
            size = cumulative[:, -1:]
            # full_like keeps below's memory layout, and with it the order the trapezoid sums in.
            rates.append(1.0 - np.divide(below, size, out=np.full_like(below, math.nan), where=size > 0))
            sizes.append(size[:, 0])
        spread = _trapezoid_over_last_axis(_spread_over_last_axis(np.stack(rates, axis=2)), thresholds)
        audc = _where_two_groups(np.stack(sizes, axis=1), spread)
    auc = _pairwise_accuracies(weights, table, np.flatnonzero(table.y == 1), np.flatnonzero(table.y == 0))
    return {"auc": auc, "group_auc": group_auc, "gpa": gpa, "audc": audc}


def _divide(numerator: np.ndarray, denominator: np.ndarray, empty: float) -> np.ndarray:
    return np.divide(numerator, denominator, out=np.full(np.broadcast(numerator, denominator).shape, empty), where=denominator > 0)


def _where_two_groups(group_sizes: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``values`` where the resample holds at least two of the groups (columns of
    ``group_sizes`` with positive weight), NaN elsewhere: an across-group figure needs two."""
    return np.where((group_sizes > 0).sum(axis=1) >= 2, values, math.nan)


def _threshold_metrics(weights: np.ndarray, table: _Table) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """(overall, per group (resamples x groups)) metrics of the predictions at the threshold."""
    positives, selected, true_positives, size = np.split(weights @ table.indicators, 4, axis=1)
    negatives, false_positives = size - positives, selected - true_positives
    groups = {
        "base_rate": _divide(positives, size, math.nan),
        "selection_rate": _divide(selected, size, math.nan),
        "tpr": _divide(true_positives, positives, math.nan),
        "fpr": _divide(false_positives, negatives, math.nan),
        "fnr": _divide(positives - true_positives, positives, math.nan),
        "ppv": _divide(true_positives, selected, math.nan),
    }
    kept = list(table.kept)
    # The fairness metrics count an empty denominator as a rate of 0, as fairlearn does, in a
    # group the resample holds; a group it drew only rows of weight 0 from is NaN (absent).
    absent = size[:, kept] == 0
    tpr = np.where(absent, math.nan, _divide(true_positives, positives, 0.0)[:, kept])
    fpr = np.where(absent, math.nan, _divide(false_positives, negatives, 0.0)[:, kept])
    all_positives, all_negatives = positives.sum(axis=1), negatives.sum(axis=1)
    recalls = np.stack([
        _divide(true_positives.sum(axis=1), all_positives, math.nan),
        _divide(all_negatives - false_positives.sum(axis=1), all_negatives, math.nan),
    ])  # fmt: skip
    overall = {
        "accuracy": _divide(true_positives.sum(axis=1) + all_negatives - false_positives.sum(axis=1), size.sum(axis=1), math.nan),
        # Mean recall over the classes present, as metrics._balanced_accuracy.
        "balanced_accuracy": _divide(np.nansum(recalls, axis=0), np.sum(~np.isnan(recalls), axis=0), math.nan),
    }
    if len(kept) >= 2:
        selection = groups["selection_rate"][:, kept]
        across = {
            "dp_difference": _spread_over_last_axis(selection),
            "eo_difference": np.maximum(_spread_over_last_axis(tpr), _spread_over_last_axis(fpr)),
            "dp_ratio": _ratio_over_last_axis(selection),
            "eo_ratio": _worst_ratio(_ratio_over_last_axis(tpr), _ratio_over_last_axis(fpr)),
        }
        overall |= {name: _where_two_groups(size[:, kept], value) for name, value in across.items()}
    else:
        overall |= dict.fromkeys(("dp_difference", "eo_difference", "dp_ratio", "eo_ratio"), np.full(weights.shape[0], math.nan))
    return overall, groups


def _resample_metrics(weights: np.ndarray, table: _Table) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Every metric of evaluate_scores for each row of ``weights`` (draw counts per row)."""
    scores = _score_metrics(weights, table)
    overall, groups = _threshold_metrics(weights, table)
    overall |= {
        "auc": scores["auc"],
        "gpa": scores["gpa"],
        "audc": scores["audc"],
        "d_gpa": (1.0 - scores["auc"]) + scores["gpa"],
        "d_audc": (1.0 - scores["auc"]) + scores["audc"],
    }
    groups["auc"] = scores["group_auc"]
    return overall, groups


def _percentile_interval(samples: np.ndarray, confidence_level: float) -> tuple[tuple[float, float] | None, int]:
    """(lower, upper) over the defined samples, and how many were undefined (NaN)."""
    defined = samples[~np.isnan(samples)]
    undefined = int(samples.size - defined.size)
    if defined.size == 0:
        return None, undefined
    tail = (1 - confidence_level) / 2
    lower, upper = np.quantile(defined, [tail, 1 - tail])
    return (float(lower), float(upper)), undefined


def _summarise(samples: dict[str, np.ndarray], names: tuple[str, ...], confidence_level: float) -> tuple[dict, dict]:
    intervals, undefined = {}, {}
    for name in names:
        intervals[name], missing = _percentile_interval(samples[name], confidence_level)
        if missing:
            undefined[name] = missing
    return intervals, undefined


def bootstrap_intervals(
    y_true, y_score, *, sensitive_features, threshold=0.5, min_group_size=30, confidence_level=0.95, n_resamples=1000, seed=0,
    sample_weight=None,
) -> BootstrapIntervals:  # fmt: skip
    """Percentile bootstrap intervals for every metric :func:`evaluate_scores` reports with
    the same arguments, from ``n_resamples`` resamples drawn within each sensitive group.

    Seeded: the same arguments give the same intervals. With ``sample_weight`` rows are
    drawn as without it (uniformly within their group) and each drawn row carries its weight.
    """
    _check_settings(confidence_level, n_resamples, seed)
    y_true, y_score, labels, codes, sample_weight = _scored_rows(y_true, y_score, sensitive_features, min_group_size, sample_weight)
    table = _table(y_true, y_score, codes, labels.size, threshold, min_group_size, sample_weight)

    rng = np.random.default_rng(seed)
    block = max(1, _CELLS_PER_BLOCK // y_true.size)
    overall_blocks, group_blocks = [], []
    for start in range(0, n_resamples, block):
        weights = _draw_counts(table, min(block, n_resamples - start), rng)
        if table.sample_weight is not None:
            weights *= table.sample_weight
        overall, groups = _resample_metrics(weights, table)
        overall_blocks.append(overall)
        group_blocks.append(groups)
    overall = {name: np.concatenate([b[name] for b in overall_blocks]) for name in OVERALL_METRICS}
    groups = {name: np.concatenate([b[name] for b in group_blocks]) for name in GROUP_METRICS}

    metrics, undefined = _summarise(overall, OVERALL_METRICS, confidence_level)
    per_group, per_group_undefined = {}, {}
    for g, label in enumerate(map(str, labels)):
        per_group[label], missing = _summarise({name: groups[name][:, g] for name in GROUP_METRICS}, GROUP_METRICS, confidence_level)
        if missing:
            per_group_undefined[label] = missing
    return BootstrapIntervals(
        confidence_level=float(confidence_level), n_resamples=int(n_resamples), seed=int(seed),
        metrics=metrics, groups=per_group, undefined=undefined, groups_undefined=per_group_undefined,
    )  # fmt: skip
