"""The fitted feature encoder, stored as plain JSON (never a pickle).

Numeric columns are imputed with the training median (plus a missing-value indicator
where training saw gaps) and standardised; other columns are one-hot encoded, with
missing values as a level of their own and unseen values at evaluation time encoded as
all zeros and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .data import MSG_INFINITE, OVERFLOWING, csv_line_numbers, label_text, label_texts
from .errors import InputError, ParameterError
from .jsonable import plain
from .spilled import SpilledColumn

__all__ = ["TabularEncoder", "StreamedEncoderFit", "EncodingReport", "MISSING_LEVEL"]

MISSING_LEVEL = "<missing>"
# Standardised values are clipped to +-CLIP: a value a million standard deviations from
# the training mean is an outlier whatever it means, and unclipped it would overflow
# float32 (1e308 standardises to inf) and poison the network with inf and NaN.
CLIP = 1e6
FORMAT_VERSION = 1

MSG_NOT_NUMERIC = (
    "column '{column}' must be numeric (as in training) but holds {value!r} at CSV line {line}"
)
MSG_NOT_FITTED = "the encoder is not fitted"
MSG_BAD_STATE = "preprocess.json is not a valid sqnn encoder: {reason}"


@dataclass
class EncodingReport:
    """What the encoder had to patch up while transforming a table."""

    unseen: dict[str, int] = field(default_factory=dict)
    """Rows per column whose category was not seen in training (encoded as all zeros)."""
    imputed: dict[str, int] = field(default_factory=dict)
    """Rows per numeric column whose missing value was replaced by the training median."""
    clipped: dict[str, int] = field(default_factory=dict)
    """Rows per numeric column whose standardised value was beyond +-CLIP and clipped."""

    @property
    def unseen_rows(self) -> int:
        return sum(self.unseen.values())

    def to_dict(self) -> dict:
        return plain({
            "unseen_categories": self.unseen,
            "imputed_values": self.imputed,
            "clipped_values": self.clipped,
        })


def _width(spec: dict[str, Any]) -> int:
    """Encoded columns of one input column (see ``feature_names``)."""
    if spec["kind"] == "numeric":
        return 2 if spec["indicator"] else 1
    return len(spec["categories"])


def _category_text(series: pd.Series) -> pd.Series:
    """Categories as strings, so 1, 1.0 and "1" read back from CSV are one level."""
    return label_texts(series)


def _is_numeric(series: pd.Series) -> bool:
    """Whether the encoder standardises a column (else it one-hot encodes it): from its
    type alone, so every chunk of a table is judged as the whole table is."""
    return pd.api.types.is_bool_dtype(series) or (
        pd.api.types.is_numeric_dtype(series) and not isinstance(series.dtype, pd.CategoricalDtype)
    )


def _numeric_spec(name: str, median: float, mean: float, scale: float, *, indicator: bool) -> dict[str, Any]:
    return {
        "name": name,
        "kind": "numeric",
        "median": median,
        "mean": mean,
        # A constant column carries no information; scale 1 keeps it finite (all zeros).
        "scale": scale if scale > 0 else 1.0,
        "indicator": indicator,
    }


def _categorical_spec(name: str, levels: Any, *, missing: bool) -> dict[str, Any]:
    categories = sorted(levels)
    # A literal "<missing>" in the data shares the level with real gaps rather than
    # repeating a category, which one-hot encoding cannot index.
    if missing and MISSING_LEVEL not in categories:
        categories.append(MISSING_LEVEL)
    return {"name": name, "kind": "categorical", "categories": categories}


class TabularEncoder:
    """Turns a table of raw columns into a float32 matrix, reproducibly."""

    def __init__(self) -> None:
        self.columns_: list[dict[str, Any]] | None = None

    # -- fitting -----------------------------------------------------------------
    def fit(self, frame: pd.DataFrame) -> "TabularEncoder":
        specs = []
        for name in frame.columns:
            series = frame[name]
            if _is_numeric(series):
                specs.append(self._fit_numeric(str(name), series.astype(float)))
            else:
                specs.append(self._fit_categorical(str(name), series))
        self.columns_ = specs
        return self

    @staticmethod
    def _fit_numeric(name: str, values: pd.Series) -> dict[str, Any]:
        present = values.dropna()
        median = float(present.median())
        filled = values.fillna(median).to_numpy(dtype=float)
        # Moments of x / peak, scaled back: sums of squares of numbers near 1e308 overflow.
        peak = float(np.max(np.abs(filled))) if filled.size else 0.0
        unit = peak if peak > 1e100 else 1.0
        mean = float(np.mean(filled / unit)) * unit
        scale = float(np.std(filled / unit)) * unit
        return _numeric_spec(name, median, mean, scale, indicator=bool(values.isna().any()))

    @staticmethod
    def _fit_categorical(name: str, values: pd.Series) -> dict[str, Any]:
        text = _category_text(values)
        return _categorical_spec(name, text.dropna().unique().tolist(), missing=bool(text.isna().any()))

    # -- transforming ------------------------------------------------------------
    @property
    def input_columns(self) -> list[str]:
        return [spec["name"] for spec in self._specs()]

    @property
    def feature_names(self) -> list[str]:
        names: list[str] = []
        for spec in self._specs():
            if spec["kind"] == "numeric":
                names.append(spec["name"])
                if spec["indicator"]:
                    names.append(f"{spec['name']}_missing")
            else:
                names.extend(f"{spec['name']}={c}" for c in spec["categories"])
        return names

    def _specs(self) -> list[dict[str, Any]]:
        if self.columns_ is None:
            raise RuntimeError(MSG_NOT_FITTED)
        return self.columns_

    def transform(self, frame: pd.DataFrame, *, inf_as_missing: bool = False) -> tuple[np.ndarray, EncodingReport]:
        """The float32 matrix of ``frame`` and what had to be patched up on the way;
        ``inf_as_missing`` imputes infinite or overflowing numbers instead of refusing them."""
        report = EncodingReport()
        specs = self._specs()
        widths = [_width(spec) for spec in specs]
        # One float32 matrix filled block by block: concatenating blocks and converting
        # would hold the encoded data three times over at its peak.
        matrix = np.zeros((len(frame), sum(widths)), dtype=np.float32)
        start = 0
        for spec, width in zip(specs, widths):
            block = matrix[:, start : start + width]
            series = frame[spec["name"]]
            if spec["kind"] == "numeric":
                block[:] = self._transform_numeric(spec, series, report, inf_as_missing)
            else:
                self._fill_categorical(spec, series, report, block)
            start += width
        return matrix, report

    @staticmethod
    def _transform_numeric(spec: dict[str, Any], series: pd.Series, report: EncodingReport, inf_as_missing: bool) -> np.ndarray:
        name = spec["name"]
        if pd.api.types.is_bool_dtype(series):
            values = series.astype(float)
        else:
            values = pd.to_numeric(series, errors="coerce")
            bad = values.isna() & series.notna()
            if bad.any():
                position = int(np.flatnonzero(bad.to_numpy())[0])
                # Rows left out upstream (--drop-missing) keep their original index label,
                # which is the CSV row; the position alone would point at an earlier line.
                row = series.index[position]
                row = int(row) if isinstance(row, (int, np.integer)) else position
                raise InputError(
                    MSG_NOT_NUMERIC.format(column=name, value=series.iloc[position], line=csv_line_numbers([row], 1))
                )
        values = values.astype(float)
        with np.errstate(invalid="ignore"):
            infinite = np.abs(values.to_numpy()) > OVERFLOWING
        if infinite.any() and inf_as_missing:
            values = values.mask(infinite)
        elif infinite.any():
            # Only a column that is text in this file gets here (a numeric column's
            # infinities are refused or made missing when the table is prepared).
            positions = np.flatnonzero(infinite)
            raise ParameterError(MSG_INFINITE, column=name, count=len(positions), lines=csv_line_numbers(positions))
        missing = values.isna().to_numpy()
        if missing.any():
            report.imputed[name] = int(missing.sum())
        filled = values.fillna(spec["median"]).to_numpy(dtype=float)
        with np.errstate(over="ignore"):
            standardised = (filled - spec["mean"]) / spec["scale"]
        beyond = np.abs(standardised) > CLIP
        if beyond.any():
            report.clipped[name] = int(beyond.sum())
            np.clip(standardised, -CLIP, CLIP, out=standardised)
        columns = [standardised]
        if spec["indicator"]:
            columns.append(missing.astype(float))
        return np.stack(columns, axis=1)

    @staticmethod
    def _fill_categorical(spec: dict[str, Any], series: pd.Series, report: EncodingReport, block: np.ndarray) -> None:
        """Write the one-hot columns of ``series`` into the zeroed ``block``."""
        categories = spec["categories"]
        text = _category_text(series)
        if MISSING_LEVEL in categories:
            # As objects: a column (or a chunk of one) with no value at all maps to floats,
            # which pandas will not fill with text.
            text = text.astype(object).fillna(MISSING_LEVEL)
        # get_indexer, not pd.Categorical: a value outside the categories is -1 here, while
        # Categorical warns about it (Pandas4Warning) and will raise in pandas 4.
        codes = pd.Index(categories, dtype=object).get_indexer(text.astype(object)).astype(np.int64)
        unseen = codes < 0
        if unseen.any():
            report.unseen[spec["name"]] = int(unseen.sum())
        rows = np.flatnonzero(~unseen)
        block[rows, codes[rows]] = 1.0

    # -- plain-data state ----------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format_version": FORMAT_VERSION, "columns": self._specs()}

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> "TabularEncoder":
        try:
            if not isinstance(state, dict):
                raise TypeError("the top level is not an object")
            if state["format_version"] != FORMAT_VERSION:
                raise ValueError(f"unknown format_version {state['format_version']!r}")
            if not isinstance(state["columns"], list):
                raise TypeError("'columns' is not a list")
            # Specs are rebuilt, not taken as read: a value that merely converts (a numeric
            # string, NaN, a zero scale) would otherwise load and then score garbage.
            columns = [_checked_spec(spec) for spec in state["columns"]]
        except KeyError as exc:
            raise InputError(MSG_BAD_STATE.format(reason=f"missing key {exc}")) from None
        except (TypeError, ValueError) as exc:
            raise InputError(MSG_BAD_STATE.format(reason=exc)) from None
        names = [spec["name"] for spec in columns]
        if len(set(names)) != len(names):
            raise InputError(MSG_BAD_STATE.format(reason="a column is listed twice"))
        encoder = cls()
        encoder.columns_ = columns
        return encoder


class StreamedEncoderFit:
    """TabularEncoder().fit of a table seen a chunk at a time, in memory bounded by a chunk
    (and each categorical column's distinct values): :meth:`add` each chunk of the
    features, then :meth:`encoder`.

    Numeric columns' values are spilled to files in ``directory`` (spilled.py) for an exact
    median; categories, missing values and the indicator are exactly fit's; means and
    scales are fit's formulas summed in another order, equal to float64 rounding. Use it
    as a context manager, so the spill files are closed whatever happens.
    """

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.numeric: dict[str, SpilledColumn] = {}
        self.levels: dict[str, set[str]] = {}
        self.gaps: dict[str, bool] = {}
        """Categorical columns: whether a value is missing."""
        self.order: list[str] = []

    def __enter__(self) -> "StreamedEncoderFit":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        for column in self.numeric.values():
            column.close()

    def add(self, frame: pd.DataFrame) -> None:
        if not self.order:
            self._start(frame)
        for name in self.order:
            series = frame[name]
            if name in self.numeric:
                self.numeric[name].add(series.astype(float).to_numpy(dtype=float))
            else:
                present = series.dropna()
                self.gaps[name] = self.gaps[name] or len(present) < len(series)
                self.levels[name].update(_distinct_text(present))

    def _start(self, frame: pd.DataFrame) -> None:
        self.order = [str(name) for name in frame.columns]
        for position, name in enumerate(self.order):
            if _is_numeric(frame[name]):
                self.numeric[name] = SpilledColumn(self.directory / f"column-{position}.f64")
            else:
                self.levels[name], self.gaps[name] = set(), False

    def empty_column(self) -> str | None:
        """The first column without a single value (which fit cannot impute or scale)."""
        for name in self.order:
            present = self.numeric[name].present if name in self.numeric else len(self.levels[name])
            if not present:
                return name
        return None

    def encoder(self) -> TabularEncoder:
        specs = []
        for name in self.order:
            if name in self.numeric:
                column = self.numeric[name]
                column.close()
                median = column.median()
                mean, scale = column.moments(median)
                specs.append(_numeric_spec(name, median, mean, scale, indicator=column.missing > 0))
            else:
                specs.append(_categorical_spec(name, self.levels[name], missing=self.gaps[name]))
        encoder = TabularEncoder()
        encoder.columns_ = specs
        return encoder


def _distinct_text(present: pd.Series) -> set[str]:
    """The labels (label_text) of a column's present values. Distinct values are found
    first, which is fast; but values of different types can be equal (True == 1) and have
    different labels, so a column of mixed types is labelled value by value."""
    distinct = pd.unique(present.to_numpy())
    if len({type(value) for value in distinct}) <= 1:
        return {label_text(value) for value in distinct}
    return set(_category_text(present).unique().tolist())


def _checked_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise TypeError("a column entry is not an object")
    name = spec["name"]
    if not isinstance(name, str):
        raise TypeError(f"column name {name!r} is not a string")
    if spec["kind"] == "numeric":
        numbers = {}
        for key in ("median", "mean", "scale"):
            value = spec[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{key} of '{name}' is not a finite number")
            numbers[key] = float(value)
        if numbers["scale"] <= 0:
            raise ValueError(f"scale of '{name}' is not positive")
        if not isinstance(spec["indicator"], bool):
            raise TypeError(f"indicator of '{name}' is not true/false")
        return {"name": name, "kind": "numeric", **numbers, "indicator": spec["indicator"]}
    if spec["kind"] == "categorical":
        categories = spec["categories"]
        if not isinstance(categories, list) or not all(isinstance(c, str) for c in categories):
            raise TypeError(f"categories of '{name}' are not a list of strings")
        if len(set(categories)) != len(categories):
            raise ValueError(f"categories of '{name}' repeat a value")
        return {"name": name, "kind": "categorical", "categories": list(categories)}
    raise ValueError(f"unknown column kind {spec['kind']!r}")
