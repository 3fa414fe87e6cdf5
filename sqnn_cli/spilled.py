"""A numeric column too long to hold in memory, spilled to a file: its exact median and
the mean and standard deviation TabularEncoder.fit computes, in bounded memory.

The values are appended a chunk at a time as float64 and read back a block at a time
into one reused buffer (readinto, not np.memmap: mapped pages would count in RSS).
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np

__all__ = ["SpilledColumn"]

_BLOCK_VALUES = 1 << 20
"""Values read back at a time: 8 MB."""
_DIGIT_BITS = 16
_SIGN = np.uint64(1 << 63)
_HUGE = 1e100
"""Beyond this, moments are taken in units of the column's largest magnitude, as
TabularEncoder.fit takes them (sums of squares of numbers near 1e154 overflow)."""


class SpilledColumn:
    """The present (non-NaN) values of one numeric column, appended to ``path``."""

    def __init__(self, path: Path):
        self.path = path
        self._writer = open(path, "wb")
        self.present = 0
        self.missing = 0
        self.peak = 0.0
        """The largest magnitude of a present value."""

    def add(self, values: np.ndarray) -> None:
        """Append a chunk of the column (float64, NaN where a value is missing)."""
        present = values[~np.isnan(values)]
        self.missing += len(values) - len(present)
        self.present += len(present)
        if len(present):
            self.peak = max(self.peak, float(np.max(np.abs(present))))
            self._writer.write(np.ascontiguousarray(present, dtype=np.float64).tobytes())

    def close(self) -> None:
        self._writer.close()

    def blocks(self) -> Iterator[np.ndarray]:
        """The present values in the order added, a block at a time (each block is a view
        of one buffer, overwritten by the next)."""
        if not self._writer.closed:
            self._writer.flush()
        buffer = np.empty(_BLOCK_VALUES, dtype=np.float64)
        with open(self.path, "rb") as reader:
            while True:
                count = reader.readinto(memoryview(buffer).cast("B")) // 8
                if count == 0:
                    return
                yield buffer[:count]

    def median(self) -> float:
        """pandas' median of the present values, exactly: the middle one, or the mean of
        the middle two (computed as np.median computes it)."""
        middle = (self.present - 1) // 2
        low = self._select(middle)
        if self.present % 2:
            return low
        return float((np.float64(low) + np.float64(self._select(middle + 1))) / 2)

    def _select(self, rank: int) -> float:
        """The value of the given rank (0: the smallest) among the present values: a radix
        select over their bit patterns mapped to order-preserving unsigned keys, 16 bits a
        pass, so memory holds one histogram and one block whatever the column's length."""
        prefix, left = np.uint64(0), rank
        for shift in range(64 - _DIGIT_BITS, -1, -_DIGIT_BITS):
            counts = np.zeros(1 << _DIGIT_BITS, dtype=np.int64)
            high = np.uint64(shift + _DIGIT_BITS)
            for block in self.blocks():
                keys = _sortable_keys(block)
                if shift + _DIGIT_BITS < 64:
                    keys = keys[(keys >> high) == prefix]
                digits = ((keys >> np.uint64(shift)) & np.uint64((1 << _DIGIT_BITS) - 1)).astype(np.intp)
                counts += np.bincount(digits, minlength=1 << _DIGIT_BITS)
            below = np.cumsum(counts)
            digit = int(np.searchsorted(below, left, side="right"))
            left -= int(below[digit - 1]) if digit else 0
            prefix = (prefix << np.uint64(_DIGIT_BITS)) | np.uint64(digit)
        return _value_of_key(prefix)

    def moments(self, median: float) -> tuple[float, float]:
        """(mean, standard deviation) of the column with its missing values filled with
        ``median``, by np.mean's and np.std's formulas (two passes: the mean, then the
        mean squared deviation from it) in TabularEncoder.fit's units; only the order of
        the sums differs, so they agree with fit's to float64 rounding."""
        peak = max(self.peak, abs(median)) if self.missing else self.peak
        unit = peak if peak > _HUGE else 1.0
        rows = self.present + self.missing
        filler = median / unit
        total = sum(float(np.sum(block / unit)) for block in self.blocks()) + self.missing * filler
        mean = total / rows
        squares = sum(float(np.sum(np.square(block / unit - mean))) for block in self.blocks())
        variance = (squares + self.missing * (filler - mean) ** 2) / rows
        return mean * unit, float(np.sqrt(variance)) * unit


def _sortable_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys in the order of the float64 ``values``: negatives have every bit
    flipped, the others only the sign bit."""
    bits = values.view(np.uint64)
    return np.where(bits & _SIGN, ~bits, bits | _SIGN)


def _value_of_key(key: np.uint64) -> float:
    bits = np.array([key], dtype=np.uint64)
    bits = np.where(bits & _SIGN, bits & ~_SIGN, ~bits)
    return float(bits.view(np.float64)[0])
