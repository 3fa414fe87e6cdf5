"""Reading CSVs and deciding what each column is for.

Everything that can be wrong with a user's table is found here and raised as an
:class:`~sqnn_cli.errors.InputError` with one line that names the problem; nothing
downstream has to second-guess the data.
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import io
import itertools
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from . import files
from .errors import InputError, ParameterError, fill

__all__ = [
    "ColumnRoles",
    "PreparedData",
    "read_table",
    "read_table_chunks",
    "TableChunks",
    "DEFAULT_CHUNK_ROWS",
    "parse_sep",
    "sniff_delimiter",
    "file_sha256",
    "resolve_roles",
    "with_weight",
    "prepare",
    "check_rows_left",
    "check_groups",
    "parse_bins",
    "csv_line_numbers",
    "MAX_SENSITIVE_LEVELS",
    "write_table",
    "write_table_chunks",
    "check_table_output",
    "infer_positive_label",
    "group_labels",
    "label_text",
    "label_texts",
]

# A numeric sensitive column with more distinct values than this is almost surely a
# measurement (age, income), not a group label; grouping it needs explicit bins.
MAX_SENSITIVE_LEVELS = 10
GROUP_SEPARATOR = " & "
_SHOWN_ROWS = 5
_SHOWN_VALUES = 10
# Two-valued targets whose positive class is clear from the words themselves.
_KNOWN_POSITIVES = {
    frozenset({"yes", "no"}): "yes",
    frozenset({"y", "n"}): "y",
    frozenset({"true", "false"}): "true",
    frozenset({"t", "f"}): "t",
    frozenset({"positive", "negative"}): "positive",
    frozenset({"pos", "neg"}): "pos",
}

MSG_NO_FILE = "data file '{path}' does not exist"
MSG_NOT_A_FILE = "'{path}' is not a file"
MSG_EMPTY = "data file '{path}' has no rows"
MSG_UNREADABLE = "cannot read '{path}' as CSV: {reason}"
MSG_DUPLICATE_COLUMNS = "data file '{path}' repeats the column name(s) {columns}; column names must be unique"
MSG_MISSING_COLUMN = " not in the data{suggestion} (columns: {available})"
MSG_NEEDS_PYARROW = "'{path}' is a Parquet file; reading it needs pyarrow: pip install 'sqnn[parquet]'"
MSG_UNREADABLE_PARQUET = "cannot read '{path}' as Parquet: {reason}"
MSG_SEP_NOT_TEXT = "{sep} applies to text tables; '{path}' is a Parquet file, whose columns are stored as such"
MSG_EXCEL = "'{path}' is an Excel workbook, which sqnn does not read; export the sheet as CSV and pass that file"
MSG_BAD_SEP = "{sep} expects one character (or 'tab', '\\t'), got {got!r}"
MSG_SEP_HINT = "; the header holds {sep_name}s: pass {sep} {sep_option}"
MSG_REPEATED_OPTION = "{%s} names {columns} more than once; name each column once"
MSG_AUTO_TARGET = (
    "; the target was chosen automatically as the last column, '{column}': "
    "name the target with {target} COLUMN"
)
MSG_NOT_BINARY = (
    "target '{column}' has {count} distinct values ({values}); "
    "pass {positive} VALUE to choose the positive class"
)
MSG_POSITIVE_ABSENT = "{positive} '{value}' is not a value of target '{column}' (values: {values})"
MSG_SINGLE_CLASS = "target '{column}' has a single class ({value}); a classifier needs both"
MSG_TARGET_EMPTY = "target '{column}' is entirely empty; choose the target column with {target}"
MSG_SINGLE_GROUP = "sensitive attribute {columns} has a single group ({group}); fairness needs at least two"
MSG_MANY_LEVELS = (
    "sensitive column '{column}' is numeric with {count} distinct values; group it explicitly, "
    "e.g. {sensitive_bins} {column}=25,65"
)
MSG_MISSING_ROWS = (
    "{count} row(s) have no value for {what} (CSV lines {lines}); "
    "fix them or pass {drop_missing} to leave them out"
)
MSG_ALL_MISSING = "column '{column}' is entirely empty; leave it out with {drop} {column}"
MSG_INFINITE = (
    "column '{column}' has {count} infinite or overflowing value(s) (beyond +-1.3e154, CSV lines {lines}); "
    "fix them or pass {inf_as_missing} to treat them as missing values"
)
# Beyond this a number's square overflows a double, and so does any variance it enters:
# standardising the column would either overflow or, computed carefully, crush every
# other value of the column to 0. Such a number is a sentinel or a corrupt cell.
OVERFLOWING = float(np.sqrt(np.finfo(np.float64).max))
MSG_UNKNOWN_LABELS = (
    "target '{column}' has value(s) {found} that the model was not trained on (it knows {known}, "
    "positive class {positive_label!r}); recode them"
)
MSG_PROBLEMS = "{count} problems in the data: "
MSG_NO_FEATURES = "no feature columns are left after removing the target, sensitive and dropped columns"
MSG_ROLE_CLASH = "column '{column}' cannot be both {first} and {second}"
MSG_BAD_WEIGHTS = (
    "weight column '{column}' must hold finite numbers >= 0; {count} row(s) do not "
    "(CSV lines {lines}, e.g. {example})"
)
MSG_WEIGHT_ABSENT = (
    "the model was trained with sample weights from column '{column}', which the data lacks; "
    "name its weight column with {weight} COLUMN, or pass {unweighted} to weigh every row the same"
)
MSG_NO_ROWS_LEFT = "no rows are left after leaving out rows with missing values"
MSG_NO_WEIGHT = "every row left has weight 0 in weight column '{column}'; a model needs rows that weigh something"
# The separators a table is sniffed for, in the order a tie is broken.
DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_SEP_SPELLINGS = {"\\t": "\t", "tab": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}
# Enough of the file to hold a header and a first row, however wide the table.
_SNIFF_BYTES = 1 << 16
_EXCEL_SUFFIXES = (".xlsx", ".xlsm", ".xls")
PARQUET_SUFFIXES = (".parquet", ".pq")
# Zip (xlsx) and OLE2 (xls) containers: what Excel writes, whatever the file is called.
_EXCEL_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")
MSG_BAD_BINS = "{sensitive_bins} expects COLUMN=EDGE,EDGE,... with numeric edges, got '{spec}'"
MSG_BINS_NOT_SENSITIVE = "{sensitive_bins} names '{column}', which is not a {sensitive} column"


@dataclass(frozen=True)
class ColumnRoles:
    """What each column of the table is used for; stored in the model bundle."""

    target: str
    positive_label: str
    sensitive: tuple[str, ...]
    features: tuple[str, ...]
    dropped: tuple[str, ...] = ()
    sensitive_bins: dict[str, tuple[float, ...]] = field(default_factory=dict)
    sensitive_as_feature: bool = False
    labels: tuple[str, ...] = ()
    """Every target value seen in training, as labels; () for bundles that predate it."""
    weight: str | None = None
    """The column of per-row sample weights, if any: not a feature."""

    def to_dict(self) -> dict:
        return {
            "weight": self.weight,
            "target": self.target,
            "positive_label": self.positive_label,
            "sensitive": list(self.sensitive),
            "features": list(self.features),
            "dropped": list(self.dropped),
            "sensitive_bins": {k: list(v) for k, v in self.sensitive_bins.items()},
            "sensitive_as_feature": self.sensitive_as_feature,
            "labels": list(self.labels),
        }

    @classmethod
    def from_dict(cls, data: dict) -> "ColumnRoles":
        return cls(
            target=str(data["target"]),
            positive_label=str(data["positive_label"]),
            sensitive=tuple(data["sensitive"]),
            features=tuple(data["features"]),
            dropped=tuple(data.get("dropped", ())),
            sensitive_bins={k: tuple(float(e) for e in v) for k, v in data.get("sensitive_bins", {}).items()},
            sensitive_as_feature=bool(data.get("sensitive_as_feature", False)),
            labels=tuple(str(label) for label in data.get("labels", ())),
            weight=None if data.get("weight") is None else str(data["weight"]),
        )


@dataclass(frozen=True)
class PreparedData:
    """A validated table split into features, labels and groups, row for row."""

    features: pd.DataFrame
    y: np.ndarray | None
    groups: np.ndarray | None
    rows_dropped: int
    kept_index: pd.Index
    weights: np.ndarray | None = None
    """Each kept row's weight (float64, >= 0) where the roles name a weight column and the
    labels were read; None otherwise."""
    weight_column: str | None = None
    """The column ``weights`` came from."""


def read_table(path: str | Path, sep: str | None = None) -> pd.DataFrame:
    """Read a delimited text file (.csv, .tsv, .txt, or any of them gzipped) with a header row.

    Without ``sep`` the delimiter is sniffed from the header and first row (see
    :func:`sniff_delimiter`); when that finds anything but a comma, ``frame.attrs
    ["delimiter_note"]`` holds a sentence for the CLI to announce, so the guess is never silent.
    """
    path = _existing_file(path)
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        return _read_parquet(path, sep)
    _refuse_excel(path)
    delimiter = parse_sep(sep) if sep is not None else sniff_delimiter(path)
    try:
        # low_memory=False: type inference over the whole column, not per chunk, so a
        # column is numeric or not as a whole.
        frame = pd.read_csv(path, sep=delimiter, low_memory=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(MSG_EMPTY.format(path=path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise _unreadable_csv(path, sep, delimiter, exc) from None
    if len(frame) == 0:
        raise InputError(MSG_EMPTY.format(path=path))
    _refuse_repeated_header(path, delimiter)
    frame.columns = [str(c).strip() for c in frame.columns]
    note = _delimiter_note(path, sep, delimiter)
    if note:
        frame.attrs["delimiter_note"] = note
    return frame


def _existing_file(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise InputError(MSG_NO_FILE.format(path=path))
    if not path.is_file():
        raise InputError(MSG_NOT_A_FILE.format(path=path))
    return path


def _unreadable_csv(path: Path, sep: str | None, delimiter: str, exc: BaseException) -> ParameterError:
    """The refusal of a file pandas could not parse, with the delimiter it looks split by."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    message = fill(MSG_UNREADABLE, path=path, reason=reason)
    sniffed = sniff_delimiter(path) if sep is not None else delimiter
    if sniffed != delimiter:
        message += fill("; it looks {name}-separated: pass {sep} {option}", name=_DELIMITER_NAMES[sniffed], option=_sep_option(sniffed))
    return ParameterError(message)


def _refuse_repeated_header(path: Path, delimiter: str) -> None:
    # pandas renames a repeated header ("age", "age.1"); the user never wrote "age.1", so
    # the table is refused rather than quietly given a column nobody named.
    header = pd.read_csv(path, sep=delimiter, nrows=1, header=None, skipinitialspace=True)
    names = [str(c).strip() for c in header.iloc[0]] if len(header) else []
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(MSG_DUPLICATE_COLUMNS.format(path=path, columns=", ".join(f"'{c}'" for c in repeated)))


def _delimiter_note(path: Path, sep: str | None, delimiter: str) -> str | None:
    """A template (errors.worded) naming the parameter, for the caller to announce: a
    sniffed delimiter other than a comma is never a silent guess."""
    if sep is not None or delimiter == ",":
        return None
    return fill(
        "reading '{path}' as {name}-separated (sniffed from its header; choose with {sep})",
        path=path, name=_DELIMITER_NAMES[delimiter],
    )  # fmt: skip


def _read_parquet(path: Path, sep: str | None) -> pd.DataFrame:
    """A Parquet file as a table: its columns, names and types as stored (no sniffing)."""
    parquet = _parquet_module(path, sep)
    try:
        table = parquet.read_table(path)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise _unreadable_parquet(path, exc) from None
    kept, names = _parquet_columns(table.schema, path)
    if table.num_rows == 0:
        raise InputError(MSG_EMPTY.format(path=path))
    frame = table.select(kept).to_pandas(ignore_metadata=True)
    frame.columns = names
    return frame


def _parquet_module(path: Path, sep: str | None):
    """pyarrow.parquet, to read the Parquet file ``path`` (to which ``sep`` cannot apply)."""
    if sep is not None:
        raise ParameterError(MSG_SEP_NOT_TEXT, path=path)
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise InputError(MSG_NEEDS_PYARROW.format(path=path)) from None
    return parquet


def _unreadable_parquet(path: Path, exc: BaseException) -> InputError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return InputError(MSG_UNREADABLE_PARQUET.format(path=path, reason=reason))


def _parquet_columns(schema, path: Path) -> tuple[list[str], list[str]]:
    """(stored columns read, their names as columns): every stored column, a named pandas
    index included, first, where pandas showed it (the last column is the default target);
    but not an unnamed index, which pandas stores as __index_level_0__: nobody wrote that
    column. A repeated name is refused."""
    metadata = schema.pandas_metadata or {}
    index = [name for name in metadata.get("index_columns", []) if isinstance(name, str) and name in schema.names]
    ordered = index + [name for name in schema.names if name not in index]
    kept = [name for name in ordered if not re.fullmatch(r"__index_level_\d+__", name)]
    names = [str(name).strip() for name in kept]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InputError(MSG_DUPLICATE_COLUMNS.format(path=path, columns=", ".join(f"'{c}'" for c in repeated)))
    return kept, names


# -- tables read a chunk at a time ---------------------------------------------------
DEFAULT_CHUNK_ROWS = 100_000
"""Rows a streaming command reads, checks and scores at a time: some tens of MB of a
typical table, so memory is bounded by the chunk, not by the table."""
MSG_MIXED_TYPES = (
    "column '{column}' of '{path}' holds {first} values in one part of the file and {second} values in "
    "another; make its values one type"
)
MSG_CHANGED = "'{path}' changed while it was being read; run the command again on a file nothing is writing"
# What read_table makes of a column, from what one chunk of it holds; a chunk whose cells
# are all empty says nothing (None). Two kinds join as the whole column would read.
_JOINED_KINDS = {frozenset({"int", "float"}): "float"}
_TEXT_JOINS = {"int", "float", "bool", "str"}


@dataclass(frozen=True)
class TableChunks:
    """A table read a chunk of rows at a time (:func:`read_table_chunks`). Iterating yields
    the chunks in order, each indexed by its rows' positions in the table (so a row's CSV
    line is its index + 2) and with the column types :func:`read_table` gives the whole
    table; every iteration reads the file again."""

    path: Path
    columns: tuple[str, ...]
    rows: int
    chunk_rows: int
    delimiter_note: str | None
    """As read_table's ``frame.attrs["delimiter_note"]``: a sniffed delimiter to announce."""
    read_chunks: Callable[[], Iterator[pd.DataFrame]] = field(repr=False, compare=False)

    def __iter__(self) -> Iterator[pd.DataFrame]:
        return self.read_chunks()


def read_table_chunks(path: str | Path, sep: str | None = None, chunk_rows: int = DEFAULT_CHUNK_ROWS) -> TableChunks:
    """The table :func:`read_table` reads, as chunks of ``chunk_rows`` rows, refused for
    the same reasons; chunk for chunk its columns, types and values are those of
    read_table's frame.

    A CSV is read twice: a first pass finds what type each column has over the whole file
    (a column with one empty cell in its millionth row is a float column from its first
    row on, as in read_table), the second reads the chunks with those types. A Parquet
    file stores its types; only integer and boolean columns with a missing value anywhere
    are widened (to float and object), as pandas widens them for the whole file.
    """
    if isinstance(chunk_rows, bool) or not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ParameterError("{chunk_rows} must be a whole number of at least 1, got {got!r}", got=chunk_rows)
    path = _existing_file(path)
    if path.name.lower().endswith(PARQUET_SUFFIXES):
        return _parquet_chunks(path, sep, chunk_rows)
    _refuse_excel(path)
    delimiter = parse_sep(sep) if sep is not None else sniff_delimiter(path)
    kinds, rows = _csv_kinds(path, sep, delimiter, chunk_rows)
    if rows == 0:
        raise InputError(MSG_EMPTY.format(path=path))
    _refuse_repeated_header(path, delimiter)
    forced = {name: dtype for name, (kind, missing) in kinds.items() if (dtype := _forced_dtype(kind, missing))}
    as_objects = [name for name, (kind, missing) in kinds.items() if kind == "bool" and missing]

    def read_chunks() -> Iterator[pd.DataFrame]:
        expected = None
        for chunk in _csv_reader(path, sep, delimiter, chunk_rows, dtype=forced):
            for name in as_objects:
                chunk[name] = chunk[name].astype(object)
            chunk.columns = [str(c).strip() for c in chunk.columns]
            expected = expected if expected is not None else chunk.dtypes
            if not chunk.dtypes.equals(expected):
                raise InputError(MSG_CHANGED.format(path=path))
            yield chunk

    columns = tuple(str(name).strip() for name in kinds)
    note = _delimiter_note(path, sep, delimiter)
    return TableChunks(path, columns, rows, chunk_rows, note, read_chunks)


def _csv_reader(path: Path, sep: str | None, delimiter: str, chunk_rows: int, dtype=None) -> Iterator[pd.DataFrame]:
    """pandas' chunks of a CSV read as read_table reads it, its failures refused alike;
    each chunk's index continues the last one's."""
    try:
        # low_memory=False: each chunk is typed as a whole, not in pieces of itself.
        options = dict(sep=delimiter, low_memory=False, skipinitialspace=True, chunksize=chunk_rows, dtype=dtype)
        with pd.read_csv(path, **options) as reader:
            yield from reader
    except pd.errors.EmptyDataError:
        raise InputError(MSG_EMPTY.format(path=path)) from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError, EOFError) as exc:
        raise _unreadable_csv(path, sep, delimiter, exc) from None


def _csv_kinds(path: Path, sep: str | None, delimiter: str, chunk_rows: int) -> tuple[dict[str, tuple], int]:
    """({column as pandas names it: (its kind over the whole file, whether a cell is
    empty)}, rows): the first pass of read_table_chunks."""
    kinds: dict[str, tuple] = {}
    rows = 0
    for chunk in _csv_reader(path, sep, delimiter, chunk_rows):
        for name in chunk.columns:
            kind, missing = kinds.get(name, (None, False))
            found, found_missing = _chunk_kind(chunk[name])
            kinds[name] = (_joined_kind(kind, found, column=str(name).strip(), path=path), missing or found_missing)
        rows += len(chunk)
    return kinds, rows


def _chunk_kind(series: pd.Series) -> tuple[str | None, bool]:
    """(what pandas made of a column in one chunk, whether a cell is empty); the kind is
    None where every cell is empty, which says nothing about the column's type."""
    empty = series.isna()
    missing = bool(empty.any())
    if missing and bool(empty.all()):
        return None, True
    # A boolean column with a gap is an object column of True, False and NaN.
    booleans = series.dtype == object and pd.api.types.infer_dtype(series, skipna=True) == "boolean"
    if pd.api.types.is_bool_dtype(series) or booleans:
        return "bool", missing
    if pd.api.types.is_integer_dtype(series) and series.dtype == np.int64:
        return "int", missing
    if pd.api.types.is_float_dtype(series):
        return "float", missing
    if pd.api.types.is_string_dtype(series):
        return "str", missing
    return str(series.dtype), missing


def _joined_kind(kind: str | None, found: str | None, *, column: str, path: Path) -> str | None:
    """The kind of a column that is ``kind`` so far and ``found`` in the next chunk: pandas
    reads a column of whole numbers and decimals as floats, and any other mix as text."""
    if kind is None or kind == found:
        return found
    if found is None:
        return kind
    joined = _JOINED_KINDS.get(frozenset({kind, found}))
    if joined is not None:
        return joined
    if {kind, found} <= _TEXT_JOINS:
        return "str"
    raise InputError(MSG_MIXED_TYPES.format(column=column, path=path, first=kind, second=found))


def _forced_dtype(kind: str | None, missing: bool) -> str | None:
    """The type the second pass must read a column as (None: as pandas infers it, which is
    the same in every chunk): floats where a column of whole numbers has a gap or a
    decimal anywhere, and text where anything else is mixed."""
    if kind is None or kind == "float" or (kind == "int" and missing):
        return "float64"
    return "str" if kind == "str" else None


def _parquet_chunks(path: Path, sep: str | None, chunk_rows: int) -> TableChunks:
    parquet = _parquet_module(path, sep)
    try:
        source = parquet.ParquetFile(path)
        kept, names = _parquet_columns(source.schema_arrow, path)
        widened = _parquet_widened(source, kept)
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError
        raise _unreadable_parquet(path, exc) from None
    if source.metadata.num_rows == 0:
        raise InputError(MSG_EMPTY.format(path=path))

    def read_chunks() -> Iterator[pd.DataFrame]:
        start = 0
        for batch in source.iter_batches(batch_size=chunk_rows, columns=kept):
            frame = batch.to_pandas(ignore_metadata=True)
            frame.columns = names
            frame.index = pd.RangeIndex(start, start + len(frame))
            for position, dtype in widened.items():
                frame.isetitem(position, frame.iloc[:, position].astype(dtype))
            start += len(frame)
            yield frame

    return TableChunks(path, tuple(names), int(source.metadata.num_rows), chunk_rows, None, read_chunks)


def _parquet_widened(source, kept: list[str]) -> dict[int, object]:
    """{position of a column: the type pandas gives it in the whole file}, for the integer
    and boolean columns with a missing value somewhere: a chunk without one would keep
    the narrower type."""
    import pyarrow as arrow

    narrow = [name for name in kept if arrow.types.is_integer(source.schema_arrow.field(name).type)
              or arrow.types.is_boolean(source.schema_arrow.field(name).type)]  # fmt: skip
    gaps = dict.fromkeys(narrow, 0)
    for batch in source.iter_batches(columns=narrow) if narrow else ():
        for name in narrow:
            gaps[name] += batch.column(name).null_count
    widened: dict[int, object] = {}
    for name in narrow:
        if gaps[name]:
            boolean = arrow.types.is_boolean(source.schema_arrow.field(name).type)
            widened[kept.index(name)] = object if boolean else np.float64
    return widened


def parse_sep(text: str) -> str:
    """The delimiter a ``sep`` value means: one character, or a name for an awkward one."""
    delimiter = _SEP_SPELLINGS.get(text.lower(), text)
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise ParameterError(MSG_BAD_SEP, got=text)
    return delimiter


def sniff_delimiter(path: str | Path) -> str:
    """The one of :data:`DELIMITERS` that splits the header into the most fields and the
    first row into as many; a comma when none splits the header at all.

    Requiring the first row to agree keeps a comma inside a quoted header name, or a
    semicolon inside a text value, from being taken for the delimiter.
    """
    path = Path(path)
    try:
        opener = gzip.open if path.name.lower().endswith(".gz") else open
        with opener(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except (OSError, EOFError):
        # Not readable as named (a .gz that is not gzip): the reader reports it properly.
        return ","
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff")
    if len(head) == _SNIFF_BYTES:
        text = text.rsplit("\n", 1)[0]
    best, best_fields = ",", 1
    for delimiter in DELIMITERS:
        try:
            rows = csv.reader(io.StringIO(text), delimiter=delimiter, skipinitialspace=True)
            records = list(itertools.islice((row for row in rows if row), 2))
        except csv.Error:
            continue
        if not records or (len(records) == 2 and len(records[1]) != len(records[0])):
            continue
        if len(records[0]) > best_fields:
            best, best_fields = delimiter, len(records[0])
    return best


def _sep_option(delimiter: str) -> str:
    """How to write ``delimiter`` as a --sep value on a command line."""
    return "tab" if delimiter == "\t" else f"'{delimiter}'"


def _refuse_excel(path: Path) -> None:
    """Excel files fail as text with a decode error that says nothing useful; name them."""
    if path.name.lower().endswith(_EXCEL_SUFFIXES):
        raise InputError(MSG_EXCEL.format(path=path))
    if path.name.lower().endswith(".zip"):
        return  # a zipped CSV shares the xlsx signature; pandas reads those
    with open(path, "rb") as handle:
        if handle.read(4) in _EXCEL_MAGIC:
            raise InputError(MSG_EXCEL.format(path=path))


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def csv_line_numbers(index: Iterable[int], limit: int = _SHOWN_ROWS) -> str:
    """Row positions as the line numbers a user sees in the file (header is line 1)."""
    positions = list(index)
    shown = ", ".join(str(int(i) + 2) for i in positions[:limit])
    return shown + (", ..." if len(positions) > limit else "")


def parse_bins(specs: Sequence[str]) -> dict[str, tuple[float, ...]]:
    """Parse ``COLUMN=EDGE,EDGE`` options into sorted cut points."""
    bins: dict[str, tuple[float, ...]] = {}
    for spec in specs:
        column, sep, edges_text = spec.partition("=")
        try:
            edges = tuple(sorted(float(e) for e in edges_text.split(",") if e.strip()))
        except ValueError:
            edges = ()
        if not sep or not column.strip() or not edges or not all(math.isfinite(e) for e in edges):
            raise ParameterError(MSG_BAD_BINS, spec=spec)
        bins[column.strip()] = edges
    return bins


def _format_values(values: Sequence[object]) -> str:
    shown = ", ".join(repr(label_text(v)) for v in values[:_SHOWN_VALUES])
    return shown + (", ..." if len(values) > _SHOWN_VALUES else "")


def label_text(value: object) -> str:
    """A value as a label: 1.0 and 1 are the same label "1", booleans 'True'/'False'.

    The one rule for turning cell values into labels: target classes, sensitive groups
    and the encoder's categories all use it, so they cannot disagree about a value."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def label_texts(series: pd.Series) -> pd.Series:
    """label_text of every present value of a column; missing values stay missing.

    Each distinct value is worded once, which on Adult's text columns takes half the time
    of wording every cell. An object column may hold True and 1, which are equal keys but
    different labels, so its cells are worded one by one."""
    if series.dtype == object:
        return series.map(label_text, na_action="ignore")
    return series.map({value: label_text(value) for value in series.dropna().unique()}, na_action="ignore")


def _require_columns(frame: pd.DataFrame, columns: Iterable[str], named_by: dict[str, str] | None = None) -> None:
    """Refuse, in one message, every named column the table lacks, listing all it has;
    ``named_by`` says which parameter named a column, so the refusal says where to look."""
    absent = [column for column in dict.fromkeys(columns) if column not in frame.columns]
    if not absent:
        return
    present = [str(c) for c in frame.columns]
    named_by = named_by or {}
    names = ", ".join(
        fill("'{column}'", column=column) + (f" (given as {{{named_by[column]}}})" if column in named_by else "")
        for column in absent
    )
    what = f"column {names} is" if len(absent) == 1 else f"columns {names} are"
    guesses = {column: _close_columns(column, present) for column in absent}
    if len(absent) == 1 and guesses[absent[0]]:
        suggestion = f"; did you mean {guesses[absent[0]]}?"
    elif any(guesses.values()):
        suggestion = "; did you mean " + ", ".join(f"{g} for '{c}'" for c, g in guesses.items() if g) + "?"
    else:
        suggestion = ""
    # ``what`` is a template already: the parameters that named each column stay fields.
    message = what + fill(MSG_MISSING_COLUMN, suggestion=suggestion, available=", ".join(present))
    if len(present) == 1:
        # One column named "a;b;c": the file was split on the wrong delimiter.
        inside = [d for d in DELIMITERS if d in present[0]]
        if inside:
            message += fill(MSG_SEP_HINT, sep_name=_DELIMITER_NAMES[inside[0]], sep_option=_sep_option(inside[0]))
    raise ParameterError(message)


def _close_columns(name: str, present: Sequence[str]) -> str:
    """Columns a user probably meant by ``name`` (a slip of case or a letter or two), quoted
    and joined with "or"; "" when none is close."""
    by_folded: dict[str, list[str]] = {}
    for column in present:
        by_folded.setdefault(column.lower(), []).append(column)
    matches = difflib.get_close_matches(name.lower(), list(by_folded), n=1, cutoff=0.75)
    return " or ".join(f"'{column}'" for match in matches for column in by_folded[match])


def infer_positive_label(series: pd.Series, column: str, positive: str | None) -> str:
    """Decide which target value is the positive class, or refuse."""
    values = series.dropna().unique()
    labels = sorted({label_text(v) for v in values}, key=_sort_key)
    if not labels:
        raise ParameterError(MSG_TARGET_EMPTY, column=column)
    if positive is not None:
        wanted = _label_of_text(positive, series)
        if wanted in labels:
            return wanted
        # "true" for a True/False column: accept a different case when it is unambiguous.
        folded = [label for label in labels if label.lower() == wanted.lower()]
        if len(folded) == 1:
            return folded[0]
        raise ParameterError(MSG_POSITIVE_ABSENT, value=positive, column=column, values=_format_values(labels))
    if len(labels) == 1:
        raise InputError(MSG_SINGLE_CLASS.format(column=column, value=labels[0]))
    if len(labels) != 2:
        raise ParameterError(MSG_NOT_BINARY, column=column, count=len(labels), values=_format_values(labels))
    known = _KNOWN_POSITIVES.get(frozenset(label.lower() for label in labels))
    if known is not None:
        return next(label for label in labels if label.lower() == known)
    # 0/1, False/True and any other pair: the larger value is the positive class, which is
    # what 0/1 coding means; the choice is recorded and reported, never hidden.
    return labels[-1]


def _label_of_text(text: str, series: pd.Series) -> str:
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
        try:
            return label_text(float(text))
        except ValueError:
            return text
    return text


def _sort_key(label: str) -> tuple[int, float, str]:
    try:
        return (0, float(label), label)
    except ValueError:
        return (1, 0.0, label)


def with_weight(roles: ColumnRoles, weight: str | None, *, unweighted: bool = False) -> ColumnRoles:
    """The roles a bundle's model is scored with: its own weight column, another one
    (``weight``), or none (``unweighted``)."""
    if weight is not None and unweighted:
        raise ParameterError("{weight} and {unweighted} contradict each other; pass one")
    if unweighted:
        return replace(roles, weight=None)
    if weight is None:
        return roles
    for first, others in (("the target", (roles.target,)), ("sensitive", roles.sensitive)):
        if weight in others:
            raise ParameterError(fill(MSG_ROLE_CLASH, column=weight, first=first, second="the sample weight"))
    return replace(roles, weight=weight)


def resolve_roles(
    frame: pd.DataFrame,
    *,
    target: str | None,
    sensitive: Sequence[str],
    positive: str | None = None,
    drop: Sequence[str] = (),
    sensitive_bins: dict[str, tuple[float, ...]] | None = None,
    sensitive_as_feature: bool = False,
    weight: str | None = None,
) -> ColumnRoles:
    """Assign every column a role; the target defaults to the last column, and a weight
    column, if named, is no feature."""
    target_column = target if target is not None else str(frame.columns[-1])
    # A repeated name is a slip (often of another column's name), so it is refused, not merged.
    for parameter, names in (("sensitive", sensitive), ("drop", drop)):
        repeated = [name for name in dict.fromkeys(names) if list(names).count(name) > 1]
        if repeated:
            raise ParameterError(MSG_REPEATED_OPTION % parameter, columns=", ".join(f"'{c}'" for c in repeated))
    sensitive = tuple(sensitive)
    drop = tuple(drop)
    sensitive_bins = dict(sensitive_bins or {})
    auto_note = fill(MSG_AUTO_TARGET, column=target_column) if target is None else ""
    named_by = {column: "drop" for column in drop} | {column: "sensitive" for column in sensitive}
    named_by[target_column] = "target" if target is not None else named_by.get(target_column, "target")
    weights = () if weight is None else (weight,)
    named_by |= {column: "weight" for column in weights}
    _require_columns(frame, (target_column, *sensitive, *drop, *weights), named_by)
    for column in weights:
        for first, others in (("the target", (target_column,)), ("sensitive", sensitive), ("dropped", drop)):
            if column in others:
                raise ParameterError(fill(MSG_ROLE_CLASH, column=column, first=first, second="the sample weight"))
    for column in sensitive:
        if column == target_column:
            raise ParameterError(fill(MSG_ROLE_CLASH, column=column, first="the target", second="sensitive") + auto_note)
        if column in drop:
            raise InputError(MSG_ROLE_CLASH.format(column=column, first="sensitive", second="dropped"))
    if target_column in drop:
        raise ParameterError(fill(MSG_ROLE_CLASH, column=target_column, first="the target", second="dropped") + auto_note)
    for column in sensitive_bins:
        if column not in sensitive:
            raise ParameterError(MSG_BINS_NOT_SENSITIVE, column=column)
    for column in sensitive:
        series = frame[column]
        is_number = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if is_number and column not in sensitive_bins and series.nunique() > MAX_SENSITIVE_LEVELS:
            raise ParameterError(MSG_MANY_LEVELS, column=column, count=series.nunique())
    excluded = {target_column, *drop, *weights} | (set() if sensitive_as_feature else set(sensitive))
    features = tuple(str(c) for c in frame.columns if c not in excluded)
    if not features:
        raise InputError(MSG_NO_FEATURES)
    positive_label = infer_positive_label(frame[target_column], target_column, positive)
    labels = sorted({label_text(v) for v in frame[target_column].dropna().unique()}, key=_sort_key)
    return ColumnRoles(
        target=target_column,
        positive_label=positive_label,
        sensitive=sensitive,
        features=features,
        dropped=drop,
        sensitive_bins=sensitive_bins,
        sensitive_as_feature=sensitive_as_feature,
        labels=tuple(labels),
        weight=weight,
    )


def _binned(series: pd.Series, column: str, edges: tuple[float, ...]) -> pd.Series:
    numbers = pd.to_numeric(series, errors="coerce")
    bad = numbers.isna() & series.notna()
    if bad.any():
        first = series[bad].iloc[0]
        raise InputError(f"sensitive column '{column}' holds non-numeric value {first!r} but has bins")
    labels = [f"{column}<{label_text(edges[0])}"]
    labels += [f"{label_text(lo)}<={column}<{label_text(hi)}" for lo, hi in zip(edges, edges[1:])]
    labels += [f"{column}>={label_text(edges[-1])}"]
    codes = np.searchsorted(np.asarray(edges), numbers.to_numpy(dtype=float), side="right")
    out = pd.Series(np.asarray(labels, dtype=object)[codes], index=series.index)
    return out.where(numbers.notna())


def group_labels(frame: pd.DataFrame, roles: ColumnRoles) -> pd.Series:
    """One group label per row; several sensitive columns form intersectional groups."""
    parts = []
    for column in roles.sensitive:
        series = frame[column]
        if column in roles.sensitive_bins:
            parts.append(_binned(series, column, roles.sensitive_bins[column]))
        else:
            parts.append(label_texts(series))
    labels = parts[0].astype(object)
    for part in parts[1:]:
        labels = labels + GROUP_SEPARATOR + part.astype(object)
    return labels


def prepare(
    frame: pd.DataFrame,
    roles: ColumnRoles,
    *,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
    need_target: bool = True,
    need_sensitive: bool = True,
    min_groups: int = 2,
    for_training: bool = False,
    first_row: int = 0,
    chunk: bool = False,
) -> PreparedData:
    """Validate a table against its roles and split it into arrays, row for row.

    Every problem the table has (missing targets or groups, infinite numbers, target
    values the model does not know) is found before any is reported, and all of them
    are refused together, so a user fixes the file once. ``for_training`` adds what
    only fitting needs: both classes present and no feature column that is entirely
    empty (it could not be imputed or scaled). ``first_row`` is the position of the frame's
    first row in its file (a chunk's offset), so refusals name the file's CSV lines. A
    ``chunk`` of a table may have no rows left, no weight or a single group: those are
    the whole table's checks (:func:`check_rows_left`, :func:`check_groups`), its caller's.
    """
    required = list(roles.features)
    need_weight = need_target and roles.weight is not None
    if need_target:
        required.append(roles.target)
    if need_weight and roles.weight not in frame.columns:
        raise ParameterError(MSG_WEIGHT_ABSENT, column=roles.weight)
    if need_sensitive:
        required.extend(roles.sensitive)
    _require_columns(frame, required)

    groups = group_labels(frame, roles) if need_sensitive else None
    problems, missing = _missing_rows(
        frame, roles, groups, need_target=need_target, drop_missing=drop_missing, first_row=first_row
    )
    weights = _weight_values(frame[roles.weight], roles.weight, problems, first_row) if need_weight else None
    features = _finite_features(frame.loc[:, list(roles.features)], problems, inf_as_missing=inf_as_missing, first_row=first_row)
    labels = label_texts(frame[roles.target]) if need_target else None
    if labels is not None and not for_training:
        labels, problem = _known_labels(labels, roles)
        if problem:
            problems.append(problem)
    _refuse_problems(problems)

    keep = (~missing).to_numpy()
    kept = features.loc[keep]
    if len(kept) == 0 and not chunk:
        raise InputError(MSG_NO_ROWS_LEFT)
    for column in roles.features if for_training else ():
        if kept[column].isna().all():
            raise ParameterError(MSG_ALL_MISSING, column=column)
    kept_weights = None if weights is None else weights[keep]
    if not chunk:
        check_rows_left(roles, rows=len(kept), weight_total=None if kept_weights is None else kept_weights.sum())
    return PreparedData(
        weights=kept_weights,
        weight_column=roles.weight if need_weight else None,
        features=kept,
        y=None if labels is None else _target_array(labels.loc[keep], roles, for_training=for_training),
        groups=None if groups is None else _group_array(groups.loc[keep], roles, 0 if chunk else min_groups),
        rows_dropped=int(missing.sum()),
        kept_index=kept.index,
    )


def _missing_rows(
    frame: pd.DataFrame,
    roles: ColumnRoles,
    groups: pd.Series | None,
    *,
    need_target: bool,
    drop_missing: bool,
    first_row: int = 0,
) -> tuple[list[str], pd.Series]:
    """(problems, missing): rows without a target or a group are problems, unless
    ``drop_missing``; either way ``missing`` marks them."""
    problems: list[str] = []
    missing = pd.Series(False, index=frame.index)
    checks: list[tuple[str, pd.Series]] = []
    if need_target:
        checks.append((f"target '{roles.target}'", frame[roles.target].isna()))
    if need_target and roles.weight is not None:
        checks.append((f"weight '{roles.weight}'", frame[roles.weight].isna()))
    if groups is not None:
        names = ", ".join(f"'{c}'" for c in roles.sensitive)
        checks.append((f"sensitive {names}", groups.isna()))
    for what, mask in checks:
        if mask.any() and not drop_missing:
            positions = first_row + np.flatnonzero(mask.to_numpy())
            problems.append(fill(MSG_MISSING_ROWS, count=len(positions), what=what, lines=csv_line_numbers(positions)))
        missing |= mask
    return problems, missing


def _weight_values(column: pd.Series, name: str, problems: list[str], first_row: int = 0) -> np.ndarray:
    """The weight column as float64; text, negative, infinite or overflowing weights are
    added to ``problems`` (missing ones are a missing row, as a missing target is)."""
    numbers = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64)
    present = column.notna().to_numpy()
    with np.errstate(invalid="ignore"):
        bad = present & ~(np.isfinite(numbers) & (numbers >= 0) & (numbers <= OVERFLOWING))
    if bad.any():
        positions = np.flatnonzero(bad)
        lines = csv_line_numbers(first_row + positions)
        problems.append(
            fill(MSG_BAD_WEIGHTS, column=name, count=len(positions), lines=lines, example=repr(column.iloc[positions[0]]))
        )
    return numbers


def _finite_features(features: pd.DataFrame, problems: list[str], *, inf_as_missing: bool, first_row: int = 0) -> pd.DataFrame:
    """The features with infinite values made missing (``inf_as_missing``), or each
    column that holds any added to ``problems``."""
    infinite = _infinite_values(features)
    if infinite and inf_as_missing:
        features = features.copy()
        for column, mask in infinite.items():
            features.loc[mask, column] = np.nan
    elif infinite:
        for column, mask in infinite.items():
            positions = first_row + np.flatnonzero(mask)
            problems.append(fill(MSG_INFINITE, column=column, count=len(positions), lines=csv_line_numbers(positions)))
    return features


def _refuse_problems(problems: list[str]) -> None:
    """All of the table's problems in one refusal, so the file is fixed once; each problem
    is a template (errors.fill) whose parameter fields the refusal words."""
    if len(problems) == 1:
        raise ParameterError(problems[0])
    if problems:
        listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
        raise ParameterError(fill(MSG_PROBLEMS, count=len(problems)) + listed)


def _target_array(labels: pd.Series, roles: ColumnRoles, *, for_training: bool) -> np.ndarray:
    """1 for the positive label, else 0; training needs both classes."""
    y = (labels == roles.positive_label).to_numpy(dtype=np.int64)
    if for_training:
        check_classes(roles, positives=int(y.sum()), rows=len(y))
    return y


def check_classes(roles: ColumnRoles, *, positives: int, rows: int) -> None:
    """Refuse training rows (``rows`` of them, ``positives`` of the positive class) that hold
    a single class: the whole table's check, for a table read a chunk at a time too."""
    if positives in (0, rows):
        present = roles.positive_label if positives else f"not {roles.positive_label!r}"
        raise InputError(MSG_SINGLE_CLASS.format(column=roles.target, value=present))


def _group_array(groups: pd.Series, roles: ColumnRoles, min_groups: int) -> np.ndarray:
    group_array = groups.to_numpy(dtype=object).astype(str)
    check_groups(roles, np.unique(group_array), min_groups)
    return group_array


def check_groups(roles: ColumnRoles, distinct: Sequence[str], min_groups: int = 2) -> None:
    """Refuse a table's rows with fewer than ``min_groups`` distinct groups (fairness needs
    two); ``distinct`` are the groups, sorted."""
    if 0 < len(distinct) < min_groups:
        names = ", ".join(f"'{c}'" for c in roles.sensitive)
        raise InputError(MSG_SINGLE_GROUP.format(columns=names, group=distinct[0]))


def check_rows_left(roles: ColumnRoles, *, rows: int, weight_total: float | None = None) -> None:
    """Refuse what is left of a table once rows with missing values are left out, where it
    is nothing: no rows, or no weight (``weight_total``: the kept rows', None unweighted)."""
    if rows == 0:
        raise InputError(MSG_NO_ROWS_LEFT)
    if weight_total is not None and not weight_total > 0:
        raise ParameterError(MSG_NO_WEIGHT, column=roles.weight)


def _infinite_values(features: pd.DataFrame) -> dict[str, np.ndarray]:
    """Row masks of the infinite or overflowing values in each numeric column that has any.

    pandas reads "inf" and "-inf" in a numeric column as floats, and a number too large
    for a float ("1e999") as infinite; standardising either would turn the whole column
    into NaN. Finite numbers beyond OVERFLOWING are refused with them.
    """
    found = {}
    for column in features.columns:
        series = features[column]
        if pd.api.types.is_float_dtype(series):
            with np.errstate(invalid="ignore"):
                mask = np.abs(series.to_numpy(dtype=float, na_value=np.nan)) > OVERFLOWING
            if mask.any():
                found[str(column)] = mask
    return found


def _known_labels(labels: pd.Series, roles: ColumnRoles) -> tuple[pd.Series, str | None]:
    """Target labels mapped onto the ones the model was trained on, and the problem with
    those it does not know (None if there are none).

    A label that differs from a training label only in case is that label when the match
    is unambiguous (the rule --positive follows). Without a known label set (a bundle from
    before it was recorded) a table may hold the positive label and one other value.
    """
    present = [label for label in labels.dropna().unique()]
    known = list(roles.labels)
    if not known:
        others = sorted({label for label in present if label != roles.positive_label}, key=_sort_key)
        if len(others) <= 1:
            return labels, None
        return labels, fill(
            MSG_UNKNOWN_LABELS,
            column=roles.target, found=_format_values(others), known="two labels", positive_label=roles.positive_label
        )
    folded: dict[str, list[str]] = {}
    for label in known:
        folded.setdefault(label.lower(), []).append(label)
    renames, unknown = {}, []
    for label in present:
        if label in known:
            continue
        candidates = folded.get(label.lower(), [])
        if len(candidates) == 1:
            renames[label] = candidates[0]
        else:
            unknown.append(label)
    if unknown:
        return labels, fill(
            MSG_UNKNOWN_LABELS,
            column=roles.target,
            found=_format_values(sorted(unknown, key=_sort_key)),
            known=_format_values(known),
            positive_label=roles.positive_label,
        )
    return (labels.replace(renames) if renames else labels), None


def check_table_output(path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Refuse, before any work is done, a CSV output that :func:`write_table` would refuse
    or could not write: a format sqnn does not write, an existing file without
    ``overwrite``, a directory, one of the command's ``inputs``, an unwritable place."""
    path = Path(path)
    if not path.name.endswith((".csv", ".csv.gz")):
        raise InputError(f"output file '{path}' must end in .csv or .csv.gz, the formats sqnn writes")
    return files.check_output_file(path, overwrite=overwrite, inputs=inputs)


def write_table(frame: pd.DataFrame, path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()) -> Path:
    """Write a CSV (gzipped for a .gz name) through a temporary file and a rename, so a
    reader never sees half a file and an interrupted run leaves the old one in place."""
    path = check_table_output(path, overwrite=overwrite, inputs=inputs)
    # The temporary's name does not end in .gz, so the compression is named, not inferred.
    compression = {"method": "gzip", "mtime": 0} if path.suffix == ".gz" else None
    return files.atomic_write(path, lambda temporary: frame.to_csv(temporary, index=False, compression=compression))


def write_table_chunks(
    frames: Iterable[pd.DataFrame], path: str | Path, *, overwrite: bool = False, inputs: Iterable[str | Path] = ()
) -> Path:
    """:func:`write_table` of the rows of ``frames`` one after another (the header once), as
    they come: what the file holds is what write_table writes for the frames joined (for a
    .gz name, once decompressed), and it appears only when the last frame is written."""
    path = check_table_output(path, overwrite=overwrite, inputs=inputs)

    def write(temporary: Path) -> None:
        with open(temporary, "wb") as raw:
            # No name in the gzip header and a zero time: the same rows give the same bytes.
            packed = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) if path.suffix == ".gz" else None
            with io.TextIOWrapper(packed or raw, encoding="utf-8", newline="") as text:
                for number, frame in enumerate(frames):
                    frame.to_csv(text, index=False, header=number == 0)

    return files.atomic_write(path, write)
