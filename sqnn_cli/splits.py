"""The one train/test split of row indices: training's held-out rows, ``sqnn split`` and
the representation audit all draw theirs here, so one seed means one split everywhere."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .errors import ParameterError

__all__ = ["check_test_size", "stratified_indices"]

MSG_TEST_SIZE = "{test_size} must be between 0 and 1 (exclusive), got {got}"
MSG_CANNOT_SPLIT = "cannot {action} {test_size} {got}: {reason}"


def check_test_size(test_size: float) -> None:
    """Refuse a share of test rows outside (0, 1)."""
    if not 0.0 < test_size < 1.0:
        raise ParameterError(MSG_TEST_SIZE, got=test_size)


def stratified_indices(
    n_rows: int,
    strata: Any = None,
    *,
    test_size: float,
    seed: int,
    fallback: Any = None,
    action: str = "split with",
) -> tuple[np.ndarray, np.ndarray]:
    """(train_rows, test_rows): positions 0..n_rows-1, each stratum (one value per row)
    in the same proportion on both sides; ``strata=None`` splits at random.

    With ``fallback``, a stratum of a single row (which cannot be on both sides) makes the
    split stratify on ``fallback`` instead: training stratifies on y and S together, and on
    y alone when a (y, S) cell is that small. ``action`` words the refusal when the rows
    cannot be split ("cannot {action} test_size 0.3: ...").
    """
    # sklearn.model_selection imports scipy.stats (0.4 s of CPU): here, train pays it only
    # when it splits (imports.py).
    from sklearn.model_selection import train_test_split

    check_test_size(test_size)
    if fallback is not None and strata is not None and not pd.Series(np.asarray(strata)).value_counts().min() >= 2:
        strata = fallback
    try:
        train_rows, test_rows = train_test_split(np.arange(n_rows), test_size=test_size, random_state=seed, stratify=strata)
    except ValueError as exc:
        raise ParameterError(MSG_CANNOT_SPLIT, action=action, got=test_size, reason=_why_unsplittable(n_rows, strata, test_size, exc)) from None
    return train_rows, test_rows


def _why_unsplittable(n_rows: int, strata: Any, test_size: float, error: ValueError) -> str:
    """scikit-learn's refusal in the user's terms: each stratum needs a row on both sides,
    so a side smaller than the number of strata cannot be stratified."""
    if strata is None:
        return str(error)
    n_strata = pd.Series(np.asarray(strata)).nunique()
    n_test = int(np.ceil(test_size * n_rows))
    smaller = min(n_test, n_rows - n_test)
    if smaller < n_strata:
        side = "held-out" if n_test <= n_rows - n_test else "training"
        return (
            f"the {side} part would have {smaller} row(s), fewer than the {n_strata} strata it must keep "
            f"(each value, or combination of values, stratified on); choose a share nearer 0.5"
        )
    return str(error)
