"""Seeded synthetic tables with properties real fairness data has and the samples lack.

Used by the test suite (small sizes) and by benchmarks/default_gamma.py (the check of the
default gamma on data it was not chosen on). Nothing here is committed as data: every
table is a function of (name, rows, seed).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import pandas as pd

__all__ = ["TABLES", "make_table"]


def _table(rng: np.random.Generator, groups: np.ndarray, logit: np.ndarray, proxy_shift: np.ndarray) -> pd.DataFrame:
    """Features: a signal y depends on, a proxy of S, noise and a category; y from logit."""
    n = len(groups)
    signal = rng.normal(size=n)
    proxy = rng.normal(size=n) + proxy_shift
    colour = rng.choice(["red", "green", "blue", "grey"], size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-(logit + 1.5 * signal)))).astype(int)
    return pd.DataFrame(
        {"signal": signal, "proxy": proxy, "noise": rng.normal(size=n), "colour": colour, "group": groups, "y": y}
    )


def _two_groups(rng: np.random.Generator, n: int, share_b: float = 0.4) -> np.ndarray:
    return rng.choice(["a", "b"], size=n, p=[1 - share_b, share_b])


def _base_rate(rate: float) -> Callable[[np.random.Generator, int], pd.DataFrame]:
    def make(rng: np.random.Generator, n: int) -> pd.DataFrame:
        groups = _two_groups(rng, n)
        # sigmoid(a + 1.5 z) averages to about sigmoid(a / 1.36), and group b adds 0.5 * 0.4.
        intercept = np.log(rate / (1 - rate)) * 1.36 - 0.2
        return _table(rng, groups, np.full(n, intercept) + 0.5 * (groups == "b"), 1.0 * (groups == "b"))

    return make


def _small_group(rng: np.random.Generator, n: int) -> pd.DataFrame:
    groups = _two_groups(rng, n, share_b=0.03)
    return _table(rng, groups, 0.8 * (groups == "b") - 0.3, 1.5 * (groups == "b"))


def _many_groups(count: int) -> Callable[[np.random.Generator, int], pd.DataFrame]:
    def make(rng: np.random.Generator, n: int) -> pd.DataFrame:
        index = rng.integers(0, count, size=n)
        groups = np.array([f"g{i:02d}" for i in range(count)])[index]
        effect = np.linspace(-1.0, 1.0, count)[index]
        return _table(rng, groups, effect, effect)

    return make


def _s_predicts_y(rng: np.random.Generator, n: int) -> pd.DataFrame:
    groups = _two_groups(rng, n, share_b=0.5)
    return _table(rng, groups, np.where(groups == "b", 2.5, -2.5), 1.0 * (groups == "b"))


def _s_independent(rng: np.random.Generator, n: int) -> pd.DataFrame:
    groups = _two_groups(rng, n, share_b=0.5)
    return _table(rng, groups, np.zeros(n), np.zeros(n))


TABLES: dict[str, Callable[[np.random.Generator, int], pd.DataFrame]] = {
    "base_rate_0.9": _base_rate(0.9),
    "base_rate_0.1": _base_rate(0.1),
    "group_of_3_percent": _small_group,
    "five_groups": _many_groups(5),
    "twenty_groups": _many_groups(20),
    "s_predicts_y": _s_predicts_y,
    "s_independent_of_y": _s_independent,
}


def make_table(name: str, rows: int, seed: int = 0) -> pd.DataFrame:
    """Table ``name`` with ``rows`` rows; target ``y``, sensitive column ``group``."""
    return TABLES[name](np.random.default_rng(seed), rows)
