"""Tests for sqnn_cli.preprocess.TabularEncoder.

The encoder's JSON state is the only record of preprocessing in a bundle, so the central
property is that a saved-and-reloaded encoder is indistinguishable from the fitted one.
"""

from __future__ import annotations

import copy
import io
import json

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sqnn_cli.errors import InputError
from sqnn_cli.preprocess import MISSING_LEVEL, TabularEncoder


def frame_of(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), low_memory=False, skipinitialspace=True)


def reloaded(encoder: TabularEncoder) -> TabularEncoder:
    # allow_nan=False as the bundle writer does: a NaN in the state would not be JSON.
    return TabularEncoder.from_dict(json.loads(json.dumps(encoder.to_dict(), allow_nan=False)))


def block(matrix: np.ndarray, encoder: TabularEncoder, prefix: str) -> np.ndarray:
    names = encoder.feature_names
    return matrix[:, [i for i, n in enumerate(names) if n == prefix or n.startswith(prefix + "=")]]


TRAIN = frame_of(
    "income,colour,flag,grade\n"
    "10,red,True,1\n"
    ",blue,False,2\n"
    "30,,True,1\n"
    "50,red,False,3\n"
    "40,green,True,2\n"
)
EVAL = frame_of(
    "income,colour,flag,grade\n"
    "20,red,True,1\n"
    ",purple,False,9\n"
    "35,,True,2\n"
)


def test_round_trip_through_json_gives_identical_matrices():
    encoder = TabularEncoder().fit(TRAIN)
    again = reloaded(encoder)
    assert again.feature_names == encoder.feature_names
    for frame in (TRAIN, EVAL):
        (a, report_a), (b, report_b) = encoder.transform(frame), again.transform(frame)
        np.testing.assert_array_equal(a, b)
        assert report_a == report_b


def test_matrix_is_float32_and_matches_the_feature_names():
    encoder = TabularEncoder().fit(TRAIN)
    matrix, _ = encoder.transform(TRAIN)
    assert matrix.dtype == np.float32 and matrix.flags["C_CONTIGUOUS"]
    assert matrix.shape == (len(TRAIN), len(encoder.feature_names))
    assert encoder.input_columns == ["income", "colour", "flag", "grade"]
    assert encoder.feature_names == [
        "income",
        "income_missing",
        "colour=blue",
        "colour=green",
        "colour=red",
        f"colour={MISSING_LEVEL}",
        "flag",
        "grade",
    ]


def test_columns_are_found_by_name_not_position():
    encoder = TabularEncoder().fit(TRAIN)
    shuffled = TRAIN[["grade", "flag", "colour", "income"]].assign(extra=1)
    np.testing.assert_array_equal(encoder.transform(TRAIN)[0], encoder.transform(shuffled)[0])


def test_numeric_columns_are_standardised_on_the_training_data():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(50, 10, 200), "b": rng.integers(0, 1000, 200), "c": rng.exponential(3, 200)})
    encoder = TabularEncoder().fit(frame)
    matrix, _ = encoder.transform(frame)
    np.testing.assert_allclose(matrix.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(matrix.std(axis=0), 1.0, atol=1e-5)


def test_constant_numeric_column_encodes_as_zeros_not_nan():
    frame = pd.DataFrame({"k": [7.0, 7.0, 7.0]})
    encoder = TabularEncoder().fit(frame)
    matrix, _ = encoder.transform(pd.DataFrame({"k": [7.0, 8.0]}))
    assert matrix[0, 0] == 0.0 and np.isfinite(matrix).all()


def test_missing_numbers_get_the_training_median_and_an_indicator():
    # A second column keeps the gaps from being blank lines, which the reader skips.
    frame = frame_of("x,pad\n1,p\n,p\n3,p\n10,p\n,p\n")[["x"]]
    encoder = TabularEncoder().fit(frame)
    spec = encoder.to_dict()["columns"][0]
    assert spec["median"] == 3.0 and spec["indicator"] is True
    assert encoder.feature_names == ["x", "x_missing"]
    matrix, report = encoder.transform(frame)
    assert report.imputed == {"x": 2}
    np.testing.assert_array_equal(matrix[:, 1], [0, 1, 0, 0, 1])
    # An imputed row encodes exactly like a row that held the median.
    assert matrix[1, 0] == matrix[4, 0] == matrix[2, 0]
    # Standardisation counts the imputed values, so the training column is still centred.
    assert abs(matrix[:, 0].mean()) < 1e-6


def test_gaps_only_at_evaluation_are_imputed_without_an_indicator():
    encoder = TabularEncoder().fit(pd.DataFrame({"x": [1.0, 2.0, 3.0]}))
    assert encoder.feature_names == ["x"]
    matrix, report = encoder.transform(pd.DataFrame({"x": [np.nan, 2.0]}))
    assert report.imputed == {"x": 1}
    assert matrix[0, 0] == matrix[1, 0] == 0.0


def test_missing_category_is_a_level_of_its_own():
    encoder = TabularEncoder().fit(TRAIN)
    matrix, report = encoder.transform(TRAIN)
    colours = block(matrix, encoder, "colour")
    np.testing.assert_array_equal(colours[2], [0, 0, 0, 1])
    assert colours.sum(axis=1).tolist() == [1, 1, 1, 1, 1]
    assert report.unseen == {}


def test_unseen_categories_are_zeros_and_counted():
    encoder = TabularEncoder().fit(TRAIN)
    matrix, report = encoder.transform(EVAL)
    colours = block(matrix, encoder, "colour")
    np.testing.assert_array_equal(colours[1], [0, 0, 0, 0])
    np.testing.assert_array_equal(colours[0], [0, 0, 1, 0])
    assert report.unseen == {"colour": 1}
    assert report.unseen_rows == 1
    assert report.to_dict() == {"unseen_categories": {"colour": 1}, "imputed_values": {"income": 1}, "clipped_values": {}}


def test_a_gap_where_training_had_none_is_counted_as_unseen():
    encoder = TabularEncoder().fit(pd.DataFrame({"c": ["a", "b", "a"]}))
    matrix, report = encoder.transform(pd.DataFrame({"c": ["a", None]}))
    np.testing.assert_array_equal(matrix, [[1, 0], [0, 0]])
    assert report.unseen == {"c": 1}


def test_numeric_looking_categories_match_however_the_csv_typed_them():
    # In training the column is text because of one word; at evaluation it holds only
    # numbers, which pandas reads as int or float. 1, 1.0 and "1" must be one level.
    encoder = TabularEncoder().fit(frame_of("code,pad\n1,p\n2,p\nnone,p\n,p\n")[["code"]])
    for text in ("code,pad\n1,p\n2,p\n", "code,pad\n1,p\n2.0,p\n", "code,pad\n1,p\n,p\n2,p\n"):
        frame = frame_of(text)[["code"]]
        _, report = encoder.transform(frame)
        assert report.unseen == {}, text


def test_non_numeric_value_in_a_numeric_column_names_column_value_and_line():
    encoder = TabularEncoder().fit(frame_of("age,c\n30,a\n40,b\n"))
    bad = frame_of("age,c\n31,a\n41,b\nforty,a\n")
    with pytest.raises(InputError) as info:
        encoder.transform(bad)
    assert str(info.value) == "column 'age' must be numeric (as in training) but holds 'forty' at CSV line 4"


def test_line_of_a_non_numeric_value_survives_rows_left_out_before_encoding():
    encoder = TabularEncoder().fit(frame_of("age\n30\n40\n"))
    frame = frame_of("age,y\n31,\n32,\nforty,1\n")
    kept = frame.loc[frame["y"].notna(), ["age"]]  # what prepare(drop_missing=True) passes on
    with pytest.raises(InputError, match="at CSV line 4$"):
        encoder.transform(kept)


class TestBoolColumns:
    def test_bool_column_is_numeric_zero_one_standardised(self):
        frame = frame_of("flag\nTrue\nFalse\nTrue\nTrue\n")
        assert frame["flag"].dtype == bool
        encoder = TabularEncoder().fit(frame)
        assert encoder.to_dict()["columns"][0]["kind"] == "numeric"
        matrix, _ = encoder.transform(frame)
        column = matrix[:, 0]
        assert column[0] == column[2] == column[3] > column[1]
        assert abs(column.mean()) < 1e-6

    def test_bool_column_with_a_gap_at_evaluation_is_imputed(self):
        encoder = TabularEncoder().fit(frame_of("flag\nTrue\nFalse\nTrue\n"))
        frame = frame_of("flag,pad\nTrue,p\n,p\nFalse,p\n")[["flag"]]
        assert frame["flag"].dtype == object
        matrix, report = encoder.transform(frame)
        assert report.imputed == {"flag": 1}
        reference, _ = encoder.transform(frame_of("flag\nTrue\nTrue\nFalse\n"))
        # The median of True, False, True is True.
        np.testing.assert_array_equal(matrix, reference)

    def test_bool_column_with_gaps_in_training_is_categorical(self):
        encoder = TabularEncoder().fit(frame_of("flag,pad\nTrue,p\n,p\nFalse,p\n")[["flag"]])
        assert encoder.feature_names == ["flag=False", "flag=True", f"flag={MISSING_LEVEL}"]
        matrix, report = encoder.transform(frame_of("flag\nFalse\nTrue\n"))
        np.testing.assert_array_equal(matrix, [[1, 0, 0], [0, 1, 0]])
        assert report.unseen == {}


def test_transform_before_fit_is_an_error():
    with pytest.raises(RuntimeError, match="not fitted"):
        TabularEncoder().transform(TRAIN)


# -- from_dict ------------------------------------------------------------------------
def _valid_state() -> dict:
    return TabularEncoder().fit(TRAIN).to_dict()


def _numeric(state: dict) -> dict:
    return state["columns"][0]


def _categorical(state: dict) -> dict:
    return state["columns"][1]


MALFORMED = {
    "not an object": lambda s: ["columns"],
    "no format_version": lambda s: s.pop("format_version"),
    "future format_version": lambda s: s.update(format_version=99),
    "no columns": lambda s: s.pop("columns"),
    "columns not a list": lambda s: s.update(columns={"income": {}}),
    "column not an object": lambda s: s["columns"].append("income"),
    "no kind": lambda s: _numeric(s).pop("kind"),
    "unknown kind": lambda s: _numeric(s).update(kind="ordinal"),
    "no name": lambda s: _numeric(s).pop("name"),
    "name not text": lambda s: _numeric(s).update(name=3),
    "duplicate column": lambda s: s["columns"].append(copy.deepcopy(_numeric(s))),
    "no median": lambda s: _numeric(s).pop("median"),
    "median as text": lambda s: _numeric(s).update(median="20"),
    "median NaN": lambda s: _numeric(s).update(median=float("nan")),
    "mean infinite": lambda s: _numeric(s).update(mean=float("inf")),
    "mean bool": lambda s: _numeric(s).update(mean=True),
    "scale zero": lambda s: _numeric(s).update(scale=0),
    "scale negative": lambda s: _numeric(s).update(scale=-1.0),
    "indicator not bool": lambda s: _numeric(s).update(indicator="no"),
    "no categories": lambda s: _categorical(s).pop("categories"),
    "categories as text": lambda s: _categorical(s).update(categories="red"),
    "category not text": lambda s: _categorical(s).update(categories=["red", 1]),
    "repeated category": lambda s: _categorical(s).update(categories=["red", "red"]),
}


@pytest.mark.parametrize("mutation", MALFORMED.values(), ids=MALFORMED.keys())
def test_from_dict_rejects_malformed_state(mutation):
    state = _valid_state()
    # Python's json module reads NaN and Infinity, so they can reach from_dict.
    state = json.loads(json.dumps(state))
    replaced = mutation(state)
    if isinstance(replaced, list):
        state = replaced
    with pytest.raises(InputError, match="^preprocess.json is not a valid sqnn encoder: "):
        TabularEncoder.from_dict(state)


def test_from_dict_accepts_integers_where_floats_were_written():
    state = _valid_state()
    _numeric(state).update(median=20, mean=30, scale=2)
    encoder = TabularEncoder.from_dict(state)
    matrix, _ = encoder.transform(pd.DataFrame({"income": [34], "colour": ["red"], "flag": [True], "grade": [1]}))
    assert matrix[0, 0] == 2.0


columns_strategy = st.lists(
    st.one_of(
        st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6, allow_nan=False)), min_size=8, max_size=8),
        st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "1", "2.5"])), min_size=8, max_size=8),
    ),
    min_size=1,
    max_size=4,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(columns_strategy, columns_strategy)
def test_round_trip_holds_for_arbitrary_tables(train_columns, eval_columns):
    width = min(len(train_columns), len(eval_columns))

    def cell(value) -> str:
        return "" if value is None else repr(value) if isinstance(value, float) else value

    def table(columns) -> pd.DataFrame:
        header = ",".join(f"c{i}" for i in range(width))
        rows = [",".join(cell(column[r]) for column in columns[:width]) for r in range(8)]
        return frame_of("\n".join([header, *rows]) + "\n")

    train = table(train_columns)
    # A column empty in training cannot be fitted; prepare refuses it before the encoder.
    train = train.loc[:, train.notna().any()]
    if train.shape[1] == 0:
        return
    encoder = TabularEncoder().fit(train)
    again = reloaded(encoder)
    evaluation = table(eval_columns)[list(train.columns)]
    try:
        expected = encoder.transform(evaluation)
    except InputError:
        with pytest.raises(InputError):
            again.transform(evaluation)
        return
    matrix, report = again.transform(evaluation)
    np.testing.assert_array_equal(matrix, expected[0])
    assert report == expected[1]
    assert np.isfinite(matrix).all()


def test_literal_missing_marker_in_the_data_shares_the_missing_level():
    frame = pd.DataFrame({"c": ["a", MISSING_LEVEL, None, "a"]})
    encoder = TabularEncoder().fit(frame)
    assert encoder.feature_names == ["c=<missing>", "c=a"]
    matrix, report = encoder.transform(frame)
    np.testing.assert_array_equal(matrix, [[0, 1], [1, 0], [1, 0], [0, 1]])
    assert report.unseen == {}


def test_sensitive_groups_and_encoder_categories_agree_on_mixed_number_text():
    """With --sensitive-as-feature a column is both a group and a category: 1.0, 1 and "1"
    must be one group and one category, or the audit's groups and the model's input would
    disagree about which rows belong together."""
    from sqnn_cli.data import ColumnRoles, group_labels

    frame = pd.DataFrame({"race": pd.Series([1.0, 1, "1", 0.0, "0", True], dtype=object)})
    roles = ColumnRoles(target="y", positive_label="1", sensitive=("race",), features=("race",))
    groups = group_labels(frame, roles)
    encoder = TabularEncoder().fit(frame)
    matrix, _ = encoder.transform(frame)
    categories = [name.removeprefix("race=") for name in encoder.feature_names]
    assert list(groups) == ["1", "1", "1", "0", "0", "True"]
    assert [categories[i] for i in matrix.argmax(axis=1)] == list(groups)
