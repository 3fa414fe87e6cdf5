"""Scoring tables too large to hold in memory: read, checked, scored and written (or
evaluated) a chunk of rows at a time (data.read_table_chunks).

A row's score depends on that row alone (rowwise.py), and a chunk's columns have the types
the whole table's have, so scoring chunk by chunk gives what scoring the whole table
gives, whatever the chunk size, while memory holds one chunk, not the table. Evaluation
keeps what every metric needs of each row in compact arrays (9 bytes a row, 17 with
weights: 90 MB for 10M rows) and computes every metric exactly, as for the table read
whole; the metrics' own working arrays (metrics.evaluate_scores) then take about 150
bytes a row more, at their peak.

Training (:func:`train_file`) reads the table a few times over: once for the distinct
values the columns' roles are resolved from (:func:`distinct_values`), once to fit the
encoder (preprocess.StreamedEncoderFit), once to encode the rows into a temporary file
(encoded_cache.EncodedCache) that SQNNClassifier.fit_blocks trains from a block at a
time; memory holds a chunk, a block and a few bytes a row (label, group, weight, score).
Held-out rows (``test_size``) are a seeded draw per row, encoded into a second file and
evaluated as pipeline.train evaluates its held-out split.

Refusals of bad rows are made chunk by chunk: they name the right CSV lines, but only
those of the first chunk that has any.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from .data import (
    MSG_ALL_MISSING,
    ColumnRoles,
    PreparedData,
    TableChunks,
    check_classes,
    check_groups,
    check_rows_left,
    prepare,
    with_weight,
    write_table_chunks,
)
from .encoded_cache import DEFAULT_BLOCK_ROWS, EncodedCache
from .errors import ParameterError
from .fitted import FittedModel
from .pipeline import (
    Evaluation,
    EvaluationSettings,
    PredictionSettings,
    TrainingOutcome,
    check_prediction_columns,
    evaluation_of_scores,
    scored_rows,
)
from .preprocess import EncodingReport, StreamedEncoderFit, TabularEncoder
from .rowwise import row_keys
from .splits import check_test_size

if TYPE_CHECKING:
    from .estimator import EpochCallback, SQNNClassifier

__all__ = [
    "StreamedPrediction", "predict_file", "evaluate_file", "merged_encoding", "StreamedTraining", "train_file",
    "distinct_values", "STREAM_FILE_BYTES",
]  # fmt: skip

STREAM_FILE_BYTES = 256 * 2**20
"""Tables whose file is larger than this are trained on streamed by default (`sqnn train`):
read whole, a table takes some ten times its CSV size in memory."""


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
        self.codes.append(_group_codes(self.groups, data.groups))
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


def _group_codes(seen: dict[str, int], groups: np.ndarray) -> np.ndarray:
    """Each row's group as a code into ``seen`` (each group with its code, in the order
    first seen), adding the groups not seen before."""
    present, codes = np.unique(groups, return_inverse=True)
    known = np.array([seen.setdefault(str(group), len(seen)) for group in present], dtype=np.int32)
    return known[codes]


# -- training -------------------------------------------------------------------------
@dataclass(frozen=True)
class StreamedTraining:
    """How :func:`train_file` reads the table, where it keeps the encoded rows, and the
    held-out rows it evaluates the model on (pipeline.train's keyword arguments)."""

    drop_missing: bool = False
    inf_as_missing: bool = False
    block_rows: int = DEFAULT_BLOCK_ROWS
    """Rows trained from at a time (rounded up to whole batches): see encoded_cache."""
    temp_dir: str | Path | None = None
    """Where the temporary files go (about 4 bytes per encoded column per row, and 8 per
    numeric column per row); None: tempfile's default (TMPDIR, else /tmp)."""
    test_size: float | None = None
    """Hold out each row with this probability (see :func:`held_out_rows`) and evaluate
    the model on them; None holds out nothing."""
    threshold: float | None = None
    min_group_size: int = 30


def distinct_values(table: TableChunks, columns: Sequence[str]) -> pd.DataFrame:
    """A small frame with the table's columns, in which each of ``columns`` holds its
    distinct values in the type the whole table gives it (repeated to a common length) and
    any other column is empty: what data.resolve_roles reads of a table (the target's
    values, the sensitive columns' levels, which columns there are)."""
    wanted = [name for name in dict.fromkeys(columns) if name in table.columns]
    found: dict[str, pd.Series] = {}
    for chunk in table:
        for name in wanted:
            values = chunk[name].dropna().drop_duplicates()
            found[name] = values if name not in found else pd.concat([found[name], values]).drop_duplicates()
    length = max([len(values) for values in found.values()] + [1])
    columns_out = {}
    for name in table.columns:
        values = found.get(name)
        if values is None or len(values) == 0:
            columns_out[name] = pd.Series(np.nan, index=range(length), dtype=object if values is None else values.dtype)
        else:
            columns_out[name] = values.iloc[np.arange(length) % len(values)].reset_index(drop=True)
    return pd.DataFrame(columns_out)


def held_out_rows(positions: np.ndarray, seed: int, test_size: float) -> np.ndarray:
    """Whether each row (by its position in the table) is held out: a seeded draw of its
    own, with probability ``test_size``, the same whatever the chunks. Not pipeline.train's
    stratified split, which needs the whole table: the held-out share is ``test_size`` in
    expectation, and each stratum's share only roughly."""
    position = np.asarray(positions, dtype=np.int64)
    # Two 16-bit halves are exact in float32: row_keys hashes a row's float32 values.
    halves = np.stack([position >> 16, position & 0xFFFF], axis=1).astype(np.float32)
    uniform = (row_keys(halves, seed) >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return uniform < test_size


def train_file(
    table: TableChunks,
    roles: ColumnRoles,
    estimator: "SQNNClassifier",
    settings: StreamedTraining = StreamedTraining(),
    *,
    epoch_callback: "EpochCallback | None" = None,
) -> TrainingOutcome:
    """pipeline.train of ``table`` in memory bounded by a chunk and a block, not by the
    table. The encoder is TabularEncoder().fit's on the training rows (its means and
    scales to float64 rounding); the model is trained by fit_blocks, whose epochs visit
    the blocks in a random order and each block's rows in a random order of their own, so
    a table of a single block trains pipeline.train's model. With ``settings.test_size``
    the held-out rows are a per-row draw (:func:`held_out_rows`), not a stratified split.
    The temporary files are deleted however the call ends (a refusal, an error, Ctrl-C)."""
    estimator.check_params()
    if settings.test_size is not None:
        check_test_size(settings.test_size)
    batch = int(estimator.batch_size)
    block_rows = -(-settings.block_rows // batch) * batch
    split = _Split(settings.test_size, int(estimator.random_state))
    with tempfile.TemporaryDirectory(prefix="sqnn-train-", dir=settings.temp_dir) as name:
        directory = Path(name)
        encoder, counts = _fitted_encoder(table, roles, settings, split, directory)
        width = len(encoder.feature_names)
        with EncodedCache(directory / "features.f32", width, block_rows) as cache, \
                EncodedCache(directory / "held-out.f32", width, block_rows) as held_out:  # fmt: skip
            rows, test = _encoded_rows(table, roles, encoder, (cache, held_out), settings, split)
            started = time.perf_counter()
            estimator.fit_blocks(
                cache, rows.labels, group_codes=rows.codes, groups=rows.groups, sample_weight=rows.weights,
                epoch_callback=epoch_callback,
            )  # fmt: skip
            seconds = time.perf_counter() - started
            evaluation = None if split.test_size is None else _held_out_evaluation(estimator, held_out, test, encoder, settings)
    return TrainingOutcome(
        model=FittedModel(estimator, encoder, roles), rows_trained=counts.rows, rows_dropped=counts.dropped,
        seconds=seconds, test=evaluation,
    )  # fmt: skip


@dataclass(frozen=True)
class _Split:
    test_size: float | None
    seed: int

    def parts(self, data: PreparedData) -> tuple[PreparedData, PreparedData | None]:
        """(the training rows, the held-out rows or None) of a prepared chunk."""
        if self.test_size is None:
            return data, None
        held = held_out_rows(data.kept_index.to_numpy(), self.seed, self.test_size)
        return _subset(data, ~held), _subset(data, held)


def _subset(data: PreparedData, rows: np.ndarray) -> PreparedData:
    return replace(
        data, features=data.features.loc[rows], y=data.y[rows], groups=data.groups[rows],
        weights=None if data.weights is None else data.weights[rows], kept_index=data.kept_index[rows],
    )  # fmt: skip


def _prepared(chunk: pd.DataFrame, roles: ColumnRoles, settings: StreamedTraining) -> PreparedData:
    """A chunk checked as pipeline.train checks the table; the checks of the whole table
    (rows left, two classes, two groups: _Counts; no empty column) follow the last chunk."""
    return prepare(
        chunk, roles, drop_missing=settings.drop_missing, inf_as_missing=settings.inf_as_missing,
        first_row=int(chunk.index[0]), chunk=True,
    )  # fmt: skip


@dataclass
class _Counts:
    """What the whole table's checks need of its prepared rows."""

    rows: int = 0
    dropped: int = 0
    positives: int = 0
    weight: float = 0.0
    groups: frozenset = frozenset()
    held_out: int = 0

    def add(self, data: PreparedData) -> None:
        self.rows += len(data.y)
        self.positives += int(data.y.sum())
        self.weight += 0.0 if data.weights is None else float(data.weights.sum())
        self.groups = self.groups | set(np.unique(data.groups).tolist())

    def check(self, roles: ColumnRoles, split: _Split) -> None:
        check_rows_left(roles, rows=self.rows, weight_total=self.weight if roles.weight is not None else None)
        check_classes(roles, positives=self.positives, rows=self.rows)
        check_groups(roles, sorted(self.groups))
        if split.test_size is not None and self.held_out == 0:
            raise ParameterError(MSG_NONE_HELD_OUT, got=split.test_size, rows=self.rows)


MSG_NONE_HELD_OUT = (
    "{test_size} {got} held out none of the {rows} rows (each row is held out by a draw of its own); "
    "raise it, or train without it"
)


def _fitted_encoder(
    table: TableChunks, roles: ColumnRoles, settings: StreamedTraining, split: _Split, directory: Path
) -> tuple[TabularEncoder, _Counts]:
    """The encoder fitted on every prepared training row, in one pass, and their counts."""
    counts = _Counts()
    with StreamedEncoderFit(directory) as fit:
        for chunk in table:
            data = _prepared(chunk, roles, settings)
            counts.dropped += data.rows_dropped
            training, held_out = split.parts(data)
            fit.add(training.features)
            counts.add(training)
            counts.held_out += 0 if held_out is None else len(held_out.y)
        counts.check(roles, split)
        empty = fit.empty_column()
        if empty is not None:
            raise ParameterError(MSG_ALL_MISSING, column=empty)
        return fit.encoder(), counts


@dataclass
class _TrainingRows:
    labels: np.ndarray
    """1 for the positive class, else 0 (int8)."""
    codes: np.ndarray
    """Each row's group, as an index into ``groups``."""
    groups: np.ndarray
    """The groups, sorted."""
    weights: np.ndarray | None


class _RowSink:
    """Encoded rows written to a cache, with each row's label, group and weight kept."""

    def __init__(self, cache: EncodedCache, *, positive_weight_only: bool):
        self.cache, self.positive_weight_only = cache, positive_weight_only
        self.weight_column: str | None = None
        self.labels: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []
        self.weights: list[np.ndarray] = []
        self.seen: dict[str, int] = {}
        self.reports: list[EncodingReport] = []

    def add(self, X: np.ndarray, data: PreparedData, report: EncodingReport) -> None:
        # Rows of weight 0 train nothing (fit leaves them out); held out, they are evaluated.
        keep = slice(None) if data.weights is None or not self.positive_weight_only else data.weights > 0
        self.cache.append(X[keep])
        self.labels.append(data.y[keep].astype(np.int8))
        self.codes.append(_group_codes(self.seen, data.groups[keep]))
        if data.weights is not None:
            self.weights.append(data.weights[keep])
        self.weight_column = data.weight_column
        self.reports.append(report)

    def rows(self) -> _TrainingRows:
        names = np.array(list(self.seen), dtype=str)
        # fit_blocks takes the groups sorted, as fit sorts them.
        rank = np.empty(len(names), dtype=np.int32)
        rank[np.argsort(names)] = np.arange(len(names), dtype=np.int32)
        return _TrainingRows(
            labels=_joined(self.labels), codes=rank[_joined(self.codes)], groups=np.sort(names),
            weights=_joined(self.weights) if self.weights else None,
        )  # fmt: skip


def _encoded_rows(
    table: TableChunks,
    roles: ColumnRoles,
    encoder: TabularEncoder,
    caches: tuple[EncodedCache, EncodedCache],
    settings: StreamedTraining,
    split: _Split,
) -> tuple[_TrainingRows, _RowSink]:
    """Encode every prepared training row of positive weight into the first cache and
    every held-out row into the second; the training rows' labels, groups and weights, and
    what was kept of the held-out rows."""
    training = _RowSink(caches[0], positive_weight_only=True)
    held_out = _RowSink(caches[1], positive_weight_only=False)
    for chunk in table:
        for sink, data in zip((training, held_out), split.parts(_prepared(chunk, roles, settings))):
            if data is not None:
                X, report = encoder.transform(data.features, inf_as_missing=settings.inf_as_missing)
                sink.add(X, data, report)
    return training.rows(), held_out


def _held_out_evaluation(
    estimator: "SQNNClassifier", cache: EncodedCache, sink: _RowSink, encoder: TabularEncoder, settings: StreamedTraining
) -> Evaluation:
    """pipeline.train's evaluation of the held-out rows, scored a block at a time."""
    encoding = merged_encoding(sink.reports, encoder.input_columns)
    rows = sink.rows()
    scores = np.concatenate([estimator.predict_proba(cache.block(index))[:, 1] for index in range(cache.n_blocks)])
    return evaluation_of_scores(
        estimator, scores, rows.labels.astype(np.int64), rows.groups[rows.codes], encoding, rows_dropped=0,
        threshold=settings.threshold, min_group_size=settings.min_group_size, weights=rows.weights,
        weight_column=sink.weight_column,
    )  # fmt: skip
