"""Table-to-model workflows: what each CLI command does, minus options and rendering."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .bundle import ModelBundle
from .fitted import FittedModel
from .gates import Gate
from .data import ColumnRoles, PreparedData, csv_line_numbers, file_sha256, prepare, with_weight
from .errors import InputError, ParameterError
from .estimator import EpochCallback, SQNNClassifier
from .metrics import EvaluationResult, evaluate_scores
from .preprocess import EncodingReport, TabularEncoder
from .splits import check_test_size, stratified_indices
from .uncertainty import BootstrapIntervals, BootstrapSettings, bootstrap_intervals

if TYPE_CHECKING:
    from .audit import InterventionPoint, RepresentationAudit
    from .constraints import GammaChoice

__all__ = [
    "AuditOutcome",
    "AuditSettings",
    "GammaSearch",
    "search_gamma",
    "InterventionSettings",
    "PruneOutcome",
    "audit",
    "prune",
    "TrainingOutcome",
    "Evaluation",
    "train",
    "training_meta",
    "evaluate",
    "evaluation_of_scores",
    "predict",
    "check_prediction_columns",
    "scored_rows",
    "PredictionSettings",
    "EvaluationSettings",
    "split",
    "SCORE_COLUMN",
    "PREDICTION_COLUMN",
]

SCORE_COLUMN = "score"
PREDICTION_COLUMN = "prediction"


# Where the decision threshold in force came from.
THRESHOLD_FROM_TRAINING = "training"
THRESHOLD_GIVEN = "given"


@dataclass
class Evaluation:
    result: EvaluationResult
    encoding: EncodingReport
    rows_dropped: int
    threshold_source: str
    """THRESHOLD_FROM_TRAINING (the model's own, chosen on its training rows) or THRESHOLD_GIVEN."""
    unseen_groups: tuple[str, ...] = ()
    """Sensitive groups of this table that training never saw."""
    intervals: BootstrapIntervals | None = None
    """Bootstrap confidence intervals of every metric, when asked for."""
    weight_column: str | None = None
    """The column whose sample weights every metric weighed the rows by; None: unweighted."""

    def to_dict(self) -> dict[str, Any]:
        payload = {
            **self.result.to_dict(),
            "sample_weight_column": self.weight_column,
            "threshold_source": self.threshold_source,
            "unseen_groups": list(self.unseen_groups),
            "rows_dropped_missing": self.rows_dropped,
            **self.encoding.to_dict(),
        }
        if self.intervals is not None:
            payload |= self.intervals.to_dict()
            for group in payload["groups"]:
                group |= self.intervals.group_dict(group["group"])
        return payload


def _evaluation(
    estimator: SQNNClassifier,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    encoding: EncodingReport,
    *,
    rows_dropped: int,
    threshold: float | None,
    n_samples: int | None = None,
    min_group_size: int,
    bootstrap: BootstrapSettings | None = None,
    weights: np.ndarray | None = None,
    weight_column: str | None = None,
) -> Evaluation:
    """Every metric of DESIGN section 3 for a model on encoded, labelled rows (weighted by
    ``weights`` if given); at the model's own threshold unless one is given; with
    ``bootstrap``, their confidence intervals too."""
    scores = estimator.predict_proba(X, n_samples=n_samples)[:, 1]
    return evaluation_of_scores(
        estimator, scores, y, groups, encoding, rows_dropped=rows_dropped, threshold=threshold,
        min_group_size=min_group_size, bootstrap=bootstrap, weights=weights, weight_column=weight_column,
    )  # fmt: skip


def evaluation_of_scores(
    estimator: SQNNClassifier,
    scores: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    encoding: EncodingReport,
    *,
    rows_dropped: int,
    threshold: float | None,
    min_group_size: int,
    bootstrap: BootstrapSettings | None = None,
    weights: np.ndarray | None = None,
    weight_column: str | None = None,
) -> Evaluation:
    """:func:`_evaluation` of rows the model has scored already (``scores``: p(classes_[1]))."""
    cut = estimator.decision_threshold(threshold)
    common = dict(sensitive_features=groups, threshold=cut, min_group_size=min_group_size, sample_weight=weights)
    result = evaluate_scores(y, scores, **common)
    intervals = None
    if bootstrap is not None:
        intervals = bootstrap_intervals(y, scores, **common, **asdict(bootstrap))
    unseen = tuple(sorted(set(map(str, groups)) - set(map(str, estimator.groups_))))
    return Evaluation(
        result=result,
        encoding=encoding,
        rows_dropped=rows_dropped,
        threshold_source=THRESHOLD_FROM_TRAINING if threshold is None else THRESHOLD_GIVEN,
        unseen_groups=unseen,
        intervals=intervals,
        weight_column=weight_column,
    )


@dataclass
class TrainingOutcome:
    model: FittedModel
    rows_trained: int
    rows_dropped: int
    seconds: float
    test: Evaluation | None

    def to_dict(self) -> dict[str, Any]:
        estimator = self.model.estimator
        return {
            "rows_trained": self.rows_trained,
            "rows_dropped_missing": self.rows_dropped,
            "training_seconds": self.seconds,
            "final_epoch": estimator.history_[-1],
            "decision_threshold": {"value": estimator.threshold_, "rule": estimator.threshold_rule_},
            "test_metrics": self.test.to_dict() if self.test else None,
        }


def _held_out_rows(data: PreparedData, test_size: float | None, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(training rows, held-out rows or None): a split stratified on y and S together, or on
    y alone where a (y, S) cell is too small to appear on both sides."""
    if not test_size:
        return np.arange(len(data.y)), None
    strata = pd.Series(data.y.astype(str)) + "|" + pd.Series(data.groups)
    return stratified_indices(len(data.y), strata, test_size=test_size, seed=seed, fallback=data.y, action="hold out")


@dataclass(frozen=True)
class Weighting:
    """Which weight column scoring a bundle's model weighs rows by: the model's own (the
    default), ``weight`` instead, or none (``unweighted``)."""

    weight: str | None = None
    unweighted: bool = False


@dataclass(frozen=True)
class EvaluationSettings:
    """How :func:`evaluate` scores a table and what it computes (its keyword arguments)."""

    threshold: float | None = None
    n_samples: int | None = None
    min_group_size: int = 30
    drop_missing: bool = False
    inf_as_missing: bool = False
    bootstrap: BootstrapSettings | None = None
    weighting: Weighting = Weighting()


@dataclass(frozen=True)
class GammaSearch:
    """How a gamma is searched for: the bounds to meet, the grid, the inner folds and how
    many runs train at once."""

    constraints: tuple[Gate, ...]
    gammas: tuple[float, ...] = tuple(round(0.1 * step, 10) for step in range(11))
    folds: int = 3
    n_jobs: int = 1
    refinements: int = 2
    """When no gamma meets the bounds, how many times the grid is refined between the
    closest gamma and its neighbour towards the bounds (constraints.refined_gammas)."""


def search_gamma(
    frame: pd.DataFrame,
    roles: ColumnRoles,
    estimator: SQNNClassifier,
    search: GammaSearch,
    *,
    test_size: float | None = None,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    threshold: float | None = None,
    min_group_size: int = 30,
    on_progress=None,
) -> GammaChoice:
    """The gamma :func:`train` should use to meet ``search.constraints`` (constraints.py),
    validated on inner folds of the rows ``train`` trains on: with ``test_size``, the same
    held-out rows are set aside first and never seen."""
    from .constraints import choose_gamma
    from .constraints import refined_gammas
    from .sweep import RunSettings, summarise, validation_records

    if test_size is not None:
        check_test_size(test_size)
    data = prepare(frame, roles, drop_missing=drop_missing, inf_as_missing=inf_as_missing, for_training=True)
    train_rows, _ = _held_out_rows(data, test_size, int(estimator.random_state))
    params = {k: v for k, v in estimator.get_params().items() if k != "gamma"} | {"hidden": list(estimator.hidden)}
    settings = RunSettings(drop_missing=False, inf_as_missing=inf_as_missing, threshold=threshold, min_group_size=min_group_size)
    training_rows = frame.loc[data.kept_index].iloc[train_rows]
    records: list[dict[str, Any]] = []
    gammas = search.gammas
    for _ in range(1 + search.refinements):
        records += validation_records(
            training_rows, roles, params, gammas, folds=search.folds, settings=settings, n_jobs=search.n_jobs,
            on_progress=on_progress,
        )  # fmt: skip
        choice = choose_gamma(summarise(records, runs_planned=len(records), folds=search.folds), search.constraints)
        gammas = refined_gammas(choice)
        if choice.gamma is not None or not gammas:
            break
    return choice


def train(
    frame: pd.DataFrame,
    roles: ColumnRoles,
    estimator: SQNNClassifier,
    *,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    test_size: float | None = None,
    threshold: float | None = None,
    min_group_size: int = 30,
    epoch_callback: EpochCallback | None = None,
) -> TrainingOutcome:
    """Fit the encoder and the classifier; with ``test_size``, score a held-out split (at
    the threshold training chose, unless ``threshold`` is given)."""
    if test_size is not None:
        check_test_size(test_size)  # before the table is prepared: a bad option fails fast
    data = prepare(frame, roles, drop_missing=drop_missing, inf_as_missing=inf_as_missing, for_training=True)
    train_rows, test_rows = _held_out_rows(data, test_size, int(estimator.random_state))

    # Indexing by position copies the table; without a held-out split there is no reason to.
    train_features = data.features if test_rows is None else data.features.iloc[train_rows]
    encoder = TabularEncoder().fit(train_features)
    X_train, _ = encoder.transform(train_features)
    started = time.perf_counter()
    estimator.fit(
        X_train, data.y[train_rows], sensitive_features=data.groups[train_rows],
        sample_weight=_rows_of(data.weights, train_rows), epoch_callback=epoch_callback,
    )  # fmt: skip
    seconds = time.perf_counter() - started

    test = None
    if test_rows is not None:
        X_test, encoding = encoder.transform(data.features.iloc[test_rows])
        test = _evaluation(
            estimator, X_test, data.y[test_rows], data.groups[test_rows], encoding,
            rows_dropped=0, threshold=threshold, min_group_size=min_group_size, weights=_rows_of(data.weights, test_rows),
            weight_column=roles.weight,
        )  # fmt: skip
    return TrainingOutcome(
        model=FittedModel(estimator, encoder, roles),
        rows_trained=len(train_rows),
        rows_dropped=data.rows_dropped,
        seconds=seconds,
        test=test,
    )


def _rows_of(weights: np.ndarray | None, rows: np.ndarray) -> np.ndarray | None:
    return None if weights is None else weights[rows]


def training_meta(outcome: TrainingOutcome, *, data_path: str | Path, options: dict[str, Any]) -> dict[str, Any]:
    """What a bundle records about how it was made (the model itself is added on save)."""
    path = Path(data_path)
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": options,
        "seed": int(outcome.model.estimator.random_state),
        "data": {
            "file": path.name,
            "sha256": file_sha256(path),
            "rows_trained": outcome.rows_trained,
            "rows_dropped_missing": outcome.rows_dropped,
        },
        "training_seconds": round(outcome.seconds, 3),
        "test_metrics": outcome.test.to_dict() if outcome.test else None,
    }


def evaluate(
    model: FittedModel,
    frame: pd.DataFrame,
    *,
    threshold: float | None = None,
    n_samples: int | None = None,
    min_group_size: int = 30,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    bootstrap: BootstrapSettings | None = None,
    weighting: Weighting = Weighting(),
) -> Evaluation:
    """Score a labelled table and compute every metric of DESIGN §3, at the model's own
    threshold unless ``threshold`` is given; with ``bootstrap``, each metric's confidence
    interval too (uncertainty.bootstrap_intervals). Rows are weighted as ``weighting``
    says: by default by the model's own weight column, if it was trained with one."""
    X, data, encoding = encoded_table(model, frame, drop_missing, inf_as_missing, weighting)
    return _evaluation(
        model.estimator, X, data.y, data.groups, encoding,
        rows_dropped=data.rows_dropped, threshold=threshold, n_samples=n_samples, min_group_size=min_group_size,
        bootstrap=bootstrap, weights=data.weights, weight_column=data.weight_column,
    )  # fmt: skip


def predicted_labels(roles: ColumnRoles) -> tuple[Any, Any]:
    """What ``predict`` writes for a positive and a negative prediction: the target's own
    labels when it had two values in training; else 1 and 0 (the positive label against
    every other value, which no single label names; or a bundle that predates labels)."""
    if len(roles.labels) == 2 and roles.positive_label in roles.labels:
        negative = next(label for label in roles.labels if label != roles.positive_label)
        return roles.positive_label, negative
    return 1, 0


SCORE_DIGITS = 6
"""Decimals of a written score: a score averages a few dozen code draws, so digits past
the sixth are sampling noise, not information."""


@dataclass(frozen=True)
class PredictionSettings:
    """How :func:`predict` scores rows and what it writes (its keyword arguments)."""

    threshold: float | None = None
    n_samples: int | None = None
    id_column: str | None = None
    inf_as_missing: bool = False
    score_digits: int | None = SCORE_DIGITS


def predict(
    model: FittedModel,
    frame: pd.DataFrame,
    *,
    threshold: float | None = None,
    n_samples: int | None = None,
    id_column: str | None = None,
    inf_as_missing: bool = False,
    score_digits: int | None = SCORE_DIGITS,
) -> tuple[pd.DataFrame, EncodingReport]:
    """The input's rows with a score and a prediction (at the model's own threshold unless
    ``threshold`` is given, written as :func:`predicted_labels`); only the features are
    needed. Scores are rounded to ``score_digits`` decimals (None: every digit); the
    prediction is made from the unrounded score."""
    check_prediction_columns(frame.columns, id_column)
    return scored_rows(model, frame, PredictionSettings(threshold, n_samples, id_column, inf_as_missing, score_digits))


def check_prediction_columns(columns: Any, id_column: str | None) -> None:
    """Refuse a table whose columns :func:`predict` could not write its output from: no
    ``id_column``, or a column named as one it adds."""
    if id_column is not None and id_column not in columns:
        raise ParameterError("{id_column} '{got}' is not a column of the data", got=id_column)
    for column in (SCORE_COLUMN, PREDICTION_COLUMN):
        if column in columns and column != id_column:
            raise InputError(f"the data already has a '{column}' column; rename it before predicting")


def scored_rows(
    model: FittedModel, frame: pd.DataFrame, settings: PredictionSettings, first_row: int = 0
) -> tuple[pd.DataFrame, EncodingReport]:
    """:func:`predict` of a table whose columns :func:`check_prediction_columns` passed,
    or of one chunk of it, whose first row is row ``first_row`` of its file (refusals name
    CSV lines): a row's output depends on that row alone."""
    inf_as_missing, digits = settings.inf_as_missing, settings.score_digits
    data = prepare(
        frame, model.roles, need_target=False, need_sensitive=False, inf_as_missing=inf_as_missing, first_row=first_row
    )
    X, encoding = model.encoder.transform(data.features, inf_as_missing=inf_as_missing)
    scores = model.estimator.predict_proba(X, n_samples=settings.n_samples)[:, 1].astype(np.float64)
    positive, negative = predicted_labels(model.roles)
    out = (frame[[settings.id_column]] if settings.id_column is not None else frame).copy()
    out[SCORE_COLUMN] = scores if digits is None else np.round(scores, digits)
    cut = model.estimator.decision_threshold(settings.threshold)
    out[PREDICTION_COLUMN] = np.where(scores >= cut, positive, negative)
    return out, encoding


def split(
    frame: pd.DataFrame, *, test_size: float, stratify: list[str], seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A train/test split of the rows, stratified on the joint values of ``stratify``."""
    check_test_size(test_size)
    missing = [c for c in stratify if c not in frame.columns]
    if missing:
        raise ParameterError("{stratify} column '{column}' is not in the data", column=missing[0])
    for column in stratify:
        empty = frame[column].isna().to_numpy()
        if empty.any():
            raise ParameterError(
                "{stratify} column '{column}' has {count} empty value(s) (CSV lines {lines}); fill them or "
                "stratify on another column", column=column, count=int(empty.sum()), lines=csv_line_numbers(np.flatnonzero(empty)),
            )  # fmt: skip
    strata = frame[stratify].astype(str).agg("|".join, axis=1) if stratify else None
    if strata is not None and strata.value_counts().min() < 2:
        rare = strata.value_counts().idxmin()
        raise InputError(f"cannot stratify: the stratum {rare!r} has a single row; stratify on fewer columns")
    train_rows, test_rows = stratified_indices(len(frame), strata, test_size=test_size, seed=seed)
    return frame.iloc[np.sort(train_rows)], frame.iloc[np.sort(test_rows)]


@dataclass
class AuditOutcome:
    audit: "RepresentationAudit"
    interventions: list["InterventionPoint"] | None
    encoding: EncodingReport
    rows_dropped: int
    mode: str | None
    """How the interventions removed a neuron (audit.PRUNE_MODES); None without them."""
    weight_column: str | None = None
    """The column whose sample weights every figure weighed the rows by; None: unweighted."""

    def gated_values(self) -> dict[str, float]:
        """The figures the audit's gates bound: the worse of the two audited views."""
        return {
            "adrg": max(self.audit.code.adrg, self.audit.theta.adrg),
            "leakage_auc": max(self.audit.code.leakage_auc, self.audit.theta.leakage_auc),
            "mi_joint": self.audit.mi_joint.bits,
        }

    def to_dict(self) -> dict[str, Any]:
        payload = self.audit.to_dict() | {"sample_weight_column": self.weight_column}
        if self.interventions is not None:
            from .audit import summarise_interventions

            payload["interventions"] = {
                "mode": self.mode,
                "curves": summarise_interventions(self.interventions),
                "points": [point.to_dict() for point in self.interventions],
            }
        return payload


def encoded_table(
    model: FittedModel, frame: pd.DataFrame, drop_missing: bool, inf_as_missing: bool = False, weighting: Weighting = Weighting()
) -> tuple[np.ndarray, PreparedData, EncodingReport]:
    """A labelled table checked against the model's roles (its weight column as
    ``weighting`` says) and encoded: the model's inputs, the prepared rows, and what the
    encoder patched up."""
    roles = with_weight(model.roles, weighting.weight, unweighted=weighting.unweighted)
    data = prepare(frame, roles, drop_missing=drop_missing, inf_as_missing=inf_as_missing)
    X, encoding = model.encoder.transform(data.features, inf_as_missing=inf_as_missing)
    return X, data, encoding


@dataclass(frozen=True)
class AuditSettings:
    """How the representation is audited (audit.audit_representation's parameters)."""

    trees: int = 1000
    test_size: float = 0.3
    draws: int = 1
    seed: int = 0
    """Seeds the split, the forests, the code draws and the random rankings."""
    n_jobs: int = -1


@dataclass(frozen=True)
class InterventionSettings:
    """How the interventions remove neurons and score what is left (audit.intervention_curves)."""

    mode: str = "zero"
    random_repeats: int = 5
    threshold: float | None = None
    """None: the model's own threshold."""
    min_group_size: int = 30
    n_samples: int | None = None


def audit(
    model: FittedModel,
    frame: pd.DataFrame,
    *,
    settings: AuditSettings = AuditSettings(),
    interventions: InterventionSettings | None = None,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    weighting: Weighting = Weighting(),
    progress=None,
) -> AuditOutcome:
    """The representation audit of a model on a labelled table and, given
    ``interventions``, the metrics after removing its top-k neurons by each ranking; rows
    weighted as in :func:`evaluate`."""
    from .audit import audit_representation, intervention_curves

    X, data, encoding = encoded_table(model, frame, drop_missing, inf_as_missing, weighting)
    result = audit_representation(
        model.estimator, X, data.y, data.groups, **asdict(settings), sample_weight=data.weights, progress=progress
    )
    curves = None
    if interventions is not None:
        curves = intervention_curves(
            model.estimator, X, data.y, data.groups, result.neurons, mode=interventions.mode,
            random_repeats=interventions.random_repeats, seed=settings.seed,
            threshold=model.estimator.decision_threshold(interventions.threshold),
            min_group_size=interventions.min_group_size, n_samples=interventions.n_samples,
            sample_weight=data.weights,
        )  # fmt: skip
    mode = interventions.mode if interventions is not None else None
    return AuditOutcome(
        audit=result, interventions=curves, encoding=encoding, rows_dropped=data.rows_dropped, mode=mode,
        weight_column=data.weight_column,
    )  # fmt: skip


@dataclass
class PruneOutcome:
    model: FittedModel
    removed: list[int]
    meta: dict[str, Any]
    """The pruned bundle's meta.json content: the source's history and this pruning step."""


def prune(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    k: int,
    by: str,
    mode: str = "zero",
    data_path: str | Path,
    seed: int = 0,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    weighting: Weighting = Weighting(),
) -> PruneOutcome:
    """Remove the k neurons of a bundle's model that carry most information about S,
    ranked on ``frame`` (its rows weighted as in :func:`evaluate`)."""
    from . import audit as audit_module

    source = bundle.model
    X, data, _ = encoded_table(source, frame, drop_missing, inf_as_missing, weighting)
    theta = source.estimator.firing_probabilities(X).astype(np.float64)
    if not 1 <= k <= theta.shape[1]:
        raise ParameterError("{k} must be between 1 and the code size ({size}), got {got}", size=theta.shape[1], got=k)
    neurons, _ = audit_module.neuron_flows(theta, data.groups, data.y, seed=seed, sample_weight=data.weights)
    already = {int(i) for step in bundle.meta.get("pruned", []) for i in step["neurons"]}
    candidates = [i for i in audit_module.rank_neurons(neurons, by) if i not in already]
    if k > len(candidates):
        raise ParameterError("{k} ({got}) is more than the {left} neurons not yet pruned", got=k, left=len(candidates))
    removed = candidates[:k]
    mean_rates = np.average(theta, axis=0, weights=data.weights)
    pruned = audit_module.prune(source.estimator, removed, mode=mode, mean_rates=mean_rates)
    # The old threshold belongs to the old head: without the removed neurons the scores
    # shift, and the old cut can put every row in one class.
    pruned.choose_threshold(
        X, pruned.classes_[data.y], rows=f"the {len(data.y)} rows of {Path(data_path).name} the pruning was ranked on",
        sample_weight=data.weights,
    )  # fmt: skip
    meta = bundle.inherited_meta()
    previous = list(bundle.meta.get("pruned", []))
    meta["pruned"] = previous + [
        {
            "neurons": [int(i) for i in removed],
            "by": by,
            "mode": mode,
            "flows": [neurons[i].to_dict() for i in removed],
            "ranking_data": {"file": Path(data_path).name, "sha256": file_sha256(data_path), "rows": len(data.y)},
            "source_bundle_sha256": bundle.meta["files"],
        }
    ]
    return PruneOutcome(model=FittedModel(pruned, source.encoder, source.roles), removed=removed, meta=meta)
