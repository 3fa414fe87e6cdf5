"""Table-to-model workflows: what each CLI command does, minus options and rendering."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.model_selection import train_test_split

from .bundle import ModelBundle
from .data import ColumnRoles, PreparedData, csv_line_numbers, file_sha256, prepare
from .errors import InputError
from .estimator import EpochCallback, SQNNClassifier
from .metrics import EvaluationResult, evaluate_scores
from .preprocess import EncodingReport, TabularEncoder

if TYPE_CHECKING:
    from .audit import InterventionPoint, RepresentationAudit

__all__ = [
    "AuditOutcome",
    "PruneOutcome",
    "audit",
    "prune",
    "TrainingOutcome",
    "Evaluation",
    "train",
    "training_meta",
    "evaluate",
    "predict",
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

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.result.to_dict(),
            "threshold_source": self.threshold_source,
            "unseen_groups": list(self.unseen_groups),
            "rows_dropped_missing": self.rows_dropped,
            **self.encoding.to_dict(),
        }


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
) -> Evaluation:
    """Every metric of DESIGN section 3 for a model on encoded, labelled rows; at the model's
    own threshold unless one is given."""
    scores = estimator.predict_proba(X, n_samples=n_samples)[:, 1]
    result = evaluate_scores(y, scores, sensitive_features=groups, threshold=estimator.decision_threshold(threshold), min_group_size=min_group_size)
    unseen = tuple(sorted(set(map(str, groups)) - set(map(str, estimator.groups_))))
    return Evaluation(
        result=result,
        encoding=encoding,
        rows_dropped=rows_dropped,
        threshold_source=THRESHOLD_FROM_TRAINING if threshold is None else THRESHOLD_GIVEN,
        unseen_groups=unseen,
    )


@dataclass
class TrainingOutcome:
    estimator: SQNNClassifier
    encoder: TabularEncoder
    roles: ColumnRoles
    rows_trained: int
    rows_dropped: int
    seconds: float
    test: Evaluation | None


def _held_out_split(y: np.ndarray, groups: np.ndarray, test_size: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of a split stratified on y and S together, or on y alone where a
    (y, S) cell is too small to appear on both sides."""
    rows = np.arange(len(y))
    strata = pd.Series(y.astype(str)) + "|" + pd.Series(groups)
    stratify = strata if strata.value_counts().min() >= 2 else y
    try:
        return train_test_split(rows, test_size=test_size, random_state=seed, stratify=stratify)
    except ValueError as exc:
        raise InputError(f"cannot hold out --test-size {test_size}: {exc}") from None


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
    if test_size is not None and not 0.0 < test_size < 1.0:
        raise InputError(f"--test-size must be between 0 and 1 (exclusive), got {test_size}")
    data = prepare(frame, roles, drop_missing=drop_missing, inf_as_missing=inf_as_missing, for_training=True)
    train_rows = np.arange(len(data.y))
    test_rows: np.ndarray | None = None
    if test_size:
        train_rows, test_rows = _held_out_split(data.y, data.groups, test_size, int(estimator.random_state))

    # Indexing by position copies the table; without a held-out split there is no reason to.
    train_features = data.features if test_rows is None else data.features.iloc[train_rows]
    encoder = TabularEncoder().fit(train_features)
    X_train, _ = encoder.transform(train_features)
    started = time.perf_counter()
    estimator.fit(X_train, data.y[train_rows], sensitive_features=data.groups[train_rows], epoch_callback=epoch_callback)
    seconds = time.perf_counter() - started

    test = None
    if test_rows is not None:
        X_test, encoding = encoder.transform(data.features.iloc[test_rows])
        test = _evaluation(
            estimator, X_test, data.y[test_rows], data.groups[test_rows], encoding,
            rows_dropped=0, threshold=threshold, min_group_size=min_group_size,
        )  # fmt: skip
    return TrainingOutcome(
        estimator=estimator,
        encoder=encoder,
        roles=roles,
        rows_trained=len(train_rows),
        rows_dropped=data.rows_dropped,
        seconds=seconds,
        test=test,
    )


def training_meta(outcome: TrainingOutcome, *, data_path: str | Path, options: dict[str, Any]) -> dict[str, Any]:
    """What a bundle records about how it was made (the model itself is added on save)."""
    path = Path(data_path)
    return {
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "options": options,
        "seed": int(outcome.estimator.random_state),
        "data": {
            "file": path.name,
            "sha256": file_sha256(path),
            "rows_trained": outcome.rows_trained,
            "rows_dropped_missing": outcome.rows_dropped,
        },
        "roles": outcome.roles.to_dict(),
        "training_seconds": round(outcome.seconds, 3),
        "test_metrics": outcome.test.to_dict() if outcome.test else None,
    }


def evaluate(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    threshold: float | None = None,
    n_samples: int | None = None,
    min_group_size: int = 30,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
) -> Evaluation:
    """Score a labelled table with a bundle and compute every metric of DESIGN §3, at the
    model's own threshold unless ``threshold`` is given."""
    X, data, encoding = _encoded(bundle, frame, drop_missing, inf_as_missing)
    return _evaluation(
        bundle.estimator, X, data.y, data.groups, encoding,
        rows_dropped=data.rows_dropped, threshold=threshold, n_samples=n_samples, min_group_size=min_group_size,
    )  # fmt: skip


def predict(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    threshold: float | None = None,
    n_samples: int | None = None,
    id_column: str | None = None,
    inf_as_missing: bool = False,
) -> tuple[pd.DataFrame, EncodingReport]:
    """The input's rows with a score and a 0/1 prediction (at the model's own threshold
    unless ``threshold`` is given); only the features are needed."""
    if id_column is not None and id_column not in frame.columns:
        raise InputError(f"--id column '{id_column}' is not in the data")
    for column in (SCORE_COLUMN, PREDICTION_COLUMN):
        if column in frame.columns and column != id_column:
            raise InputError(f"the data already has a '{column}' column; rename it before predicting")
    data = prepare(frame, bundle.roles, need_target=False, need_sensitive=False, inf_as_missing=inf_as_missing)
    X, encoding = bundle.encoder.transform(data.features, inf_as_missing=inf_as_missing)
    scores = bundle.estimator.predict_proba(X, n_samples=n_samples)[:, 1]
    cut = bundle.estimator.decision_threshold(threshold)
    kept = frame[[id_column]] if id_column is not None else frame
    out = kept.copy()
    out[SCORE_COLUMN] = scores
    out[PREDICTION_COLUMN] = (scores >= cut).astype(np.int64)
    return out, encoding


def split(
    frame: pd.DataFrame, *, test_size: float, stratify: list[str], seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A train/test split of the rows, stratified on the joint values of ``stratify``."""
    if not 0.0 < test_size < 1.0:
        raise InputError(f"--test-size must be between 0 and 1 (exclusive), got {test_size}")
    missing = [c for c in stratify if c not in frame.columns]
    if missing:
        raise InputError(f"--stratify column '{missing[0]}' is not in the data")
    for column in stratify:
        empty = frame[column].isna().to_numpy()
        if empty.any():
            raise InputError(
                f"--stratify column '{column}' has {int(empty.sum())} empty value(s) (CSV lines "
                f"{csv_line_numbers(np.flatnonzero(empty))}); fill them or stratify on another column"
            )
    strata = frame[stratify].astype(str).agg("|".join, axis=1) if stratify else None
    if strata is not None and strata.value_counts().min() < 2:
        rare = strata.value_counts().idxmin()
        raise InputError(f"cannot stratify: the stratum {rare!r} has a single row; stratify on fewer columns")
    try:
        train_rows, test_rows = train_test_split(
            np.arange(len(frame)), test_size=test_size, random_state=seed, stratify=strata
        )
    except ValueError as exc:
        raise InputError(f"cannot split with --test-size {test_size}: {exc}") from None
    return frame.iloc[np.sort(train_rows)], frame.iloc[np.sort(test_rows)]


@dataclass
class AuditOutcome:
    audit: "RepresentationAudit"
    interventions: list["InterventionPoint"] | None
    encoding: EncodingReport
    rows_dropped: int


def _encoded(
    bundle: ModelBundle, frame: pd.DataFrame, drop_missing: bool, inf_as_missing: bool = False
) -> tuple[np.ndarray, PreparedData, EncodingReport]:
    data = prepare(frame, bundle.roles, drop_missing=drop_missing, inf_as_missing=inf_as_missing)
    X, encoding = bundle.encoder.transform(data.features, inf_as_missing=inf_as_missing)
    return X, data, encoding


def audit(
    bundle: ModelBundle,
    frame: pd.DataFrame,
    *,
    trees: int = 1000,
    test_size: float = 0.3,
    draws: int = 1,
    seed: int = 0,
    n_jobs: int = -1,
    interventions: bool = False,
    mode: str = "zero",
    random_repeats: int = 5,
    threshold: float | None = None,
    min_group_size: int = 30,
    n_samples: int | None = None,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    progress=None,
) -> AuditOutcome:
    """The representation audit of a bundle on a labelled table, with interventions
    (scored at the model's own threshold unless ``threshold`` is given)."""
    from .audit import audit_representation, intervention_curves

    X, data, encoding = _encoded(bundle, frame, drop_missing, inf_as_missing)
    result = audit_representation(
        bundle.estimator, X, data.y, data.groups, trees=trees, test_size=test_size, draws=draws, seed=seed,
        n_jobs=n_jobs, progress=progress,
    )  # fmt: skip
    curves = None
    if interventions:
        curves = intervention_curves(
            bundle.estimator, X, data.y, data.groups, result.neurons, mode=mode, random_repeats=random_repeats,
            seed=seed, threshold=bundle.estimator.decision_threshold(threshold),
            min_group_size=min_group_size, n_samples=n_samples,
        )  # fmt: skip
    return AuditOutcome(audit=result, interventions=curves, encoding=encoding, rows_dropped=data.rows_dropped)


@dataclass
class PruneOutcome:
    estimator: SQNNClassifier
    removed: list[int]
    meta: dict[str, Any]


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
) -> PruneOutcome:
    """Remove the k neurons that carry most information about S, ranked on ``frame``."""
    from . import audit as audit_module

    code_size = bundle.estimator._code_size()
    if not 1 <= k <= code_size:
        raise InputError(f"--k must be between 1 and the code size ({code_size}), got {k}")
    X, data, _ = _encoded(bundle, frame, drop_missing, inf_as_missing)
    theta = bundle.estimator.firing_probabilities(X).astype(np.float64)
    neurons, _ = audit_module.neuron_flows(theta, data.groups, data.y, seed=seed)
    already = {int(i) for step in bundle.meta.get("pruned", []) for i in step["neurons"]}
    candidates = [i for i in audit_module.rank_neurons(neurons, by) if i not in already]
    if k > len(candidates):
        raise InputError(f"--k {k} is more than the {len(candidates)} neurons not yet pruned")
    removed = candidates[:k]
    pruned = audit_module.prune(bundle.estimator, removed, mode=mode, mean_rates=theta.mean(axis=0))
    # The old threshold belongs to the old head: without the removed neurons the scores
    # shift, and the old cut can put every row in one class.
    pruned.choose_threshold(X, data.y, rows=f"the {len(data.y)} rows of {Path(data_path).name} the pruning was ranked on")
    meta = {
        key: value for key, value in bundle.meta.items()
        if key not in {"schema_version", "sqnn_version", "torch_version", "python_version", "model", "files"}
    }  # fmt: skip
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
    return PruneOutcome(estimator=pruned, removed=removed, meta=meta)
