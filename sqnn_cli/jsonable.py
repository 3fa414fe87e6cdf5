"""Values as strict JSON accepts them: the one place NaN becomes null."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

__all__ = ["plain"]


def plain(value: Any) -> Any:
    """A JSON-ready copy: NaN and infinities become None, numpy scalars Python numbers,
    paths strings, tuples lists and mapping keys strings."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar, without importing numpy
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value
