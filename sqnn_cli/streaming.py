"""Scoring tables too large to hold in memory: read, checked, scored and written (or
evaluated) a chunk of rows at a time (data.read_table_chunks).

A row's score depends on that row alone (rowwise.py), and a chunk's columns have the types
the whole table's have, so scoring chunk by chunk gives what scoring the whole table
gives, whatever the chunk size, while memory holds one chunk, not the table. Evaluation
keeps what every metric needs of each row in compact arrays (9 bytes a row, 17 with
weights: 90 MB for 10M rows) and computes every metric exactly, as for the table read
whole; the metrics' own working arrays (metrics.evaluate_scores) then take about 150
bytes a row more, at their peak.

Refusals of bad rows are made chunk by chunk: they name the right CSV lines, but only
those of the first chunk that has any.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from .data import PreparedData, TableChunks, check_groups, check_rows_left, prepare, with_weight, write_table_chunks
from .fitted import FittedModel
from .pipeline import (
    Evaluation,
    EvaluationSettings,
    PredictionSettings,
    check_prediction_columns,
    evaluation_of_scores,
    scored_rows,
)
from .preprocess import EncodingReport

__all__ = ["StreamedPrediction", "predict_file", "evaluate_file", "merged_encoding"]


@dataclass
class StreamedPrediction:
    path: Path
    """The file written."""
    rows: int
    encoding: EncodingReport
    """What the encoder patched up, over every chunk."""


def predict_file(
    model: FittedModel,
    table: TableChunks,
    out: str | Path,
    settings: PredictionSettings = PredictionSettings(),
    *,
    overwrite: bool = False,
) -> StreamedPrediction:
    """pipeline.predict of ``table`` written to ``out`` as data.write_table writes it, one
    chunk at a time: the file appears, complete, once the last chunk is scored, and a
    refusal or an interruption leaves no part of it."""
    check_prediction_columns(table.columns, settings.id_column)
    reports: list[EncodingReport] = []
    rows = 0

    def scored_chunks() -> Iterator[pd.DataFrame]:
        nonlocal rows
        for chunk in table:
            scored, encoding = scored_rows(model, chunk, settings, first_row=int(chunk.index[0]))
            reports.append(encoding)
            rows += len(scored)
            yield scored

    path = write_table_chunks(scored_chunks(), out, overwrite=overwrite, inputs=(table.path,))
    return StreamedPrediction(path=path, rows=rows, encoding=merged_encoding(reports, model.encoder.input_columns))


def merged_encoding(reports: Iterable[EncodingReport], columns: list[str]) -> EncodingReport:
    """One report for the chunks of a table: each column's counts summed, the columns in
    the encoder's order (as one transform of the whole table lists them)."""
    merged = EncodingReport()
    for report in reports:
        for kind in ("unseen", "imputed", "clipped"):
            total = getattr(merged, kind)
            for column, count in getattr(report, kind).items():
                total[column] = total.get(column, 0) + count
    order = {column: position for position, column in enumerate(columns)}
    for kind in ("unseen", "imputed", "clipped"):
        setattr(merged, kind, dict(sorted(getattr(merged, kind).items(), key=lambda item: order[item[0]])))
    return merged


def evaluate_file(model: FittedModel, table: TableChunks, settings: EvaluationSettings = EvaluationSettings()) -> Evaluation:
    """pipeline.evaluate of ``table``, read and scored a chunk at a time: the same figures,
    computed once from every row's score, label, group and weight."""
    weighting = settings.weighting
    roles = with_weight(model.roles, weighting.weight, unweighted=weighting.unweighted)
    kept = _KeptRows()
    reports: list[EncodingReport] = []
    for chunk in table:
        data = prepare(
            chunk, roles, drop_missing=settings.drop_missing, inf_as_missing=settings.inf_as_missing,
            first_row=int(chunk.index[0]), chunk=True,
        )  # fmt: skip
        if len(data.y):
            X, encoding = model.encoder.transform(data.features, inf_as_missing=settings.inf_as_missing)
            kept.add(model.estimator.predict_proba(X, n_samples=settings.n_samples)[:, 1], data)
            reports.append(encoding)
        kept.dropped += data.rows_dropped
    scores, y, groups, weights = kept.arrays()
    check_rows_left(roles, rows=len(y), weight_total=None if weights is None else weights.sum())
    check_groups(roles, sorted(kept.groups))
    return evaluation_of_scores(
        model.estimator, scores, y, groups, merged_encoding(reports, model.encoder.input_columns),
        rows_dropped=kept.dropped, threshold=settings.threshold, min_group_size=settings.min_group_size,
        bootstrap=settings.bootstrap, weights=weights, weight_column=roles.weight,
    )  # fmt: skip


class _KeptRows:
    """What evaluation needs of each kept row, a chunk at a time, compactly: the score as
    scored (float32), the label as one byte, the group as a code into ``groups``, the
    weight (float64, as prepare gives it)."""

    def __init__(self) -> None:
        self.scores: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.groups: dict[str, int] = {}
        """Each group seen, with its code, in the order first seen."""
        self.dropped = 0

    def add(self, scores: np.ndarray, data: PreparedData) -> None:
        self.scores.append(np.ascontiguousarray(scores))
        self.labels.append(data.y.astype(np.int8))
        present, codes = np.unique(data.groups, return_inverse=True)
        known = np.array([self.groups.setdefault(str(group), len(self.groups)) for group in present], dtype=np.int32)
        self.codes.append(known[codes])
        if data.weights is not None:
            self.weights.append(data.weights)

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """(scores, labels, groups, weights or None) of every kept row, in the table's order;
        as prepare and the scorer give them for the whole table."""
        if not self.scores:
            return np.zeros(0, np.float32), np.zeros(0, np.int64), np.zeros(0, str), None
        # Each list is let go as soon as it is joined: memory holds one copy and the next.
        groups = np.array(list(self.groups), dtype=str)[_joined(self.codes)]
        labels = _joined(self.labels).astype(np.int64)
        weights = _joined(self.weights) if self.weights else None
        return _joined(self.scores), labels, groups, weights


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    """The parts as one array, emptying the list."""
    joined = np.concatenate(parts)
    parts.clear()
    return joined
