"""The one train/test split: the same seed gives the same rows as the three splits it
replaced (training's held-out rows, ``sqnn split``, the representation audit)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from sqnn_cli.errors import ParameterError
from sqnn_cli.splits import check_test_size, stratified_indices


def table(n: int = 200, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(np.int64)
    groups = rng.choice(np.array(["a", "b", "c"]), size=n, p=[0.6, 0.3, 0.1])
    return y, groups


@pytest.mark.parametrize("seed", [0, 1, 7, 42])
def test_held_out_rows_are_those_training_drew_before(seed):
    """Stratified on y and S together, as pipeline.train has always held rows out."""
    y, groups = table(seed=seed)
    strata = pd.Series(y.astype(str)) + "|" + pd.Series(groups)
    expected = train_test_split(np.arange(len(y)), test_size=0.3, random_state=seed, stratify=strata)
    got = stratified_indices(len(y), strata, test_size=0.3, seed=seed, fallback=y, action="hold out")
    np.testing.assert_array_equal(got[0], expected[0])
    np.testing.assert_array_equal(got[1], expected[1])


def test_a_single_row_cell_falls_back_to_stratifying_on_the_fallback():
    y, groups = table()
    groups[np.flatnonzero(y == 1)[0]] = "lonely"  # a (y, S) cell of one row
    strata = pd.Series(y.astype(str)) + "|" + pd.Series(groups)
    expected = train_test_split(np.arange(len(y)), test_size=0.25, random_state=3, stratify=y)
    got = stratified_indices(len(y), strata, test_size=0.25, seed=3, fallback=y)
    np.testing.assert_array_equal(got[1], expected[1])
    with pytest.raises(ParameterError, match="^cannot split with test_size 0.25: "):
        stratified_indices(len(y), strata, test_size=0.25, seed=3)  # no fallback: refused


@pytest.mark.parametrize("seed", [0, 5])
def test_audit_and_split_command_rows_are_unchanged(seed):
    y, groups = table(seed=seed)
    for strata in (groups, pd.Series(groups).astype(str) + "|" + pd.Series(y).astype(str), None):
        expected = train_test_split(np.arange(len(y)), test_size=0.4, random_state=seed, stratify=strata)
        got = stratified_indices(len(y), strata, test_size=0.4, seed=seed)
        np.testing.assert_array_equal(got[0], expected[0])
        np.testing.assert_array_equal(got[1], expected[1])


@pytest.mark.parametrize("test_size", [0.0, 1.0, -0.2, 1.5])
def test_test_size_outside_the_unit_interval_names_the_parameter(test_size):
    with pytest.raises(ParameterError) as caught:
        check_test_size(test_size)
    assert str(caught.value) == f"test_size must be between 0 and 1 (exclusive), got {test_size}"
    # The CLI words the same refusal with its flag, as before.
    flagged = caught.value.worded(lambda name: "--" + name.replace("_", "-"))
    assert flagged == f"--test-size must be between 0 and 1 (exclusive), got {test_size}"
    with pytest.raises(ParameterError):
        stratified_indices(10, None, test_size=test_size, seed=0)


def test_too_few_rows_for_every_stratum_is_refused_in_the_callers_words():
    y, groups = table(n=30)
    with pytest.raises(ParameterError) as caught:
        stratified_indices(len(y), groups, test_size=0.05, seed=0, action="split for the audit with")
    message = caught.value.worded(lambda name: "--" + name.replace("_", "-"))
    assert message.startswith("cannot split for the audit with --test-size 0.05: ")
    assert "\n" not in message
