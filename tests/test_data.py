"""Tests for sqnn_cli.data: reading tables, assigning column roles, validating rows.

Frames are built from CSV text with the same reader options as ``read_table`` so that
column dtypes (bool, int with gaps, pandas' string dtype) are the ones a user's file
really produces, not the ones a hand-built DataFrame happens to have.
"""

from __future__ import annotations

import gzip
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sqnn_cli.data import (
    MAX_SENSITIVE_LEVELS,
    ColumnRoles,
    csv_line_numbers,
    group_labels,
    infer_positive_label,
    label_text,
    label_texts,
    parse_bins,
    prepare,
    read_table,
    resolve_roles,
    write_table,
)
from sqnn_cli.errors import InputError


def frame_of(text: str) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(text), low_memory=False, skipinitialspace=True)


def csv_text(columns: dict[str, list]) -> str:
    rows = zip(*columns.values())
    lines = [",".join(columns)] + [",".join("" if v is None else str(v) for v in row) for row in rows]
    return "\n".join(lines) + "\n"


SMALL = "age,colour,sex,y\n30,red,F,1\n40,blue,M,0\n50,red,F,0\n60,green,M,1\n"


# -- read_table ---------------------------------------------------------------------
class TestReadTable:
    def test_plain_and_gzipped_csv_read_the_same(self, tmp_path):
        plain = tmp_path / "t.csv"
        plain.write_text(SMALL)
        zipped = tmp_path / "t.csv.gz"
        with gzip.open(zipped, "wt") as handle:
            handle.write(SMALL)
        a, b = read_table(plain), read_table(zipped)
        pd.testing.assert_frame_equal(a, b)
        assert list(a.columns) == ["age", "colour", "sex", "y"]
        assert len(a) == 4

    def test_header_names_are_stripped(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text(" age , sex,y \n1,F,0\n2,M,1\n")
        assert list(read_table(path).columns) == ["age", "sex", "y"]

    def test_missing_file_names_it(self, tmp_path):
        with pytest.raises(InputError, match=r"nope\.csv.*does not exist"):
            read_table(tmp_path / "nope.csv")

    def test_directory_is_not_a_file(self, tmp_path):
        with pytest.raises(InputError, match="is not a file"):
            read_table(tmp_path)

    @pytest.mark.parametrize(
        "name, content",
        [
            ("zero.csv", b""),
            ("blank.csv", b"\n\n"),
            ("header.csv", b"a,b,y\n"),
            ("zero.csv.gz", gzip.compress(b"")),
            ("header.csv.gz", gzip.compress(b"a,b,y\n")),
        ],
    )
    def test_empty_files_have_no_rows(self, tmp_path, name, content):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError, match=re.escape(f"data file '{path}' has no rows")):
            read_table(path)

    def test_gz_name_on_plain_bytes_is_unreadable_not_a_crash(self, tmp_path):
        path = tmp_path / "fake.csv.gz"
        path.write_text(SMALL)
        with pytest.raises(InputError, match=r"cannot read .*fake\.csv\.gz"):
            read_table(path)


# -- csv_line_numbers -----------------------------------------------------------------
def test_csv_line_numbers_count_the_header_and_truncate():
    assert csv_line_numbers([0]) == "2"
    assert csv_line_numbers([0, 3, 9]) == "2, 5, 11"
    assert csv_line_numbers(range(7)) == "2, 3, 4, 5, 6, ..."
    assert csv_line_numbers(range(7), limit=2) == "2, 3, ..."


# -- resolve_roles --------------------------------------------------------------------
class TestResolveRoles:
    def test_last_column_is_the_default_target(self):
        roles = resolve_roles(frame_of(SMALL), target=None, sensitive=["sex"])
        assert roles.target == "y"
        assert roles.features == ("age", "colour")
        assert roles.sensitive == ("sex",)

    @pytest.mark.parametrize(
        "values, positive",
        [
            ([0, 1, 1, 0], "1"),
            ([0.0, 1.0, None, 0.0], "1"),  # a gap turns 0/1 into floats
            ([1, 2, 2, 1], "2"),
            (["True", "False", "True", "False"], "True"),
            (["True", "False", None, "False"], "True"),  # object dtype, not bool
            (["yes", "no", "no", "yes"], "yes"),
            (["No", "Yes", "No", "Yes"], "Yes"),
            (["n", "y", "n", "y"], "y"),
            (["<=50K", ">50K", "<=50K", ">50K"], ">50K"),
            (["negative", "positive", "negative", "positive"], "positive"),
        ],
    )
    def test_positive_class_is_inferred_for_two_valued_targets(self, values, positive):
        frame = frame_of(csv_text({"x": [1, 2, 3, 4], "s": ["a", "b", "a", "b"], "y": values}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        assert roles.positive_label == positive

    def test_three_valued_target_lists_its_values_and_asks_for_positive(self):
        frame = frame_of(csv_text({"x": [1, 2, 3], "s": ["a", "b", "a"], "y": ["low", "mid", "high"]}))
        with pytest.raises(InputError) as info:
            resolve_roles(frame, target="y", sensitive=["s"])
        message = str(info.value)
        assert "target 'y' has 3 distinct values" in message
        for value in ("low", "mid", "high"):
            assert repr(value) in message
        assert "pass positive VALUE" in message

    def test_many_valued_target_listing_is_truncated(self):
        frame = frame_of(csv_text({"x": range(20), "s": ["a", "b"] * 10, "y": list(range(20))}))
        with pytest.raises(InputError, match=r"20 distinct values .*, \.\.\.\)"):
            resolve_roles(frame, target="y", sensitive=["s"])

    @pytest.mark.parametrize(
        "values, given, chosen",
        [
            (["low", "mid", "high"], "high", "high"),
            ([0, 1, 2], "2", "2"),
            ([0, 1, 2], "2.0", "2"),  # the label, not the text typed
            ([0.5, 1.5, 2.5], "1.5", "1.5"),
            ([0, 1, 1], "0", "0"),  # an explicit choice overrides the 0/1 default
        ],
    )
    def test_positive_option_selects_the_class(self, values, given, chosen):
        frame = frame_of(csv_text({"x": [1, 2, 3], "s": ["a", "b", "a"], "y": values}))
        roles = resolve_roles(frame, target="y", sensitive=["s"], positive=given)
        assert roles.positive_label == chosen

    def test_positive_option_not_among_the_values(self):
        frame = frame_of(csv_text({"x": [1, 2, 3], "s": ["a", "b", "a"], "y": ["low", "mid", "high"]}))
        with pytest.raises(InputError) as info:
            resolve_roles(frame, target="y", sensitive=["s"], positive="medium")
        message = str(info.value)
        assert "positive 'medium'" in message and "target 'y'" in message and "'mid'" in message

    def test_single_class_target(self):
        frame = frame_of(csv_text({"x": [1, 2], "s": ["a", "b"], "y": [1, 1]}))
        with pytest.raises(InputError, match="target 'y' has a single class"):
            resolve_roles(frame, target="y", sensitive=["s"])

    def test_entirely_empty_target(self):
        frame = frame_of(csv_text({"x": [1, 2], "s": ["a", "b"], "y": [None, None]}))
        with pytest.raises(InputError, match="target 'y' is entirely empty"):
            resolve_roles(frame, target="y", sensitive=["s"])

    @pytest.mark.parametrize(
        "kwargs, column",
        [
            ({"target": "label", "sensitive": ["sex"]}, "'label' (given as target)"),
            ({"target": "y", "sensitive": ["gender"]}, "'gender' (given as sensitive)"),
            ({"target": "y", "sensitive": ["sex"], "drop": ["id"]}, "'id' (given as drop)"),
        ],
    )
    def test_missing_column_is_named_with_the_columns_present(self, kwargs, column):
        with pytest.raises(InputError) as info:
            resolve_roles(frame_of(SMALL), **kwargs)
        assert str(info.value) == f"column {column} is not in the data (columns: age, colour, sex, y)"

    def test_numeric_sensitive_with_many_levels_is_refused_with_a_bins_hint(self):
        ages = list(range(20, 20 + MAX_SENSITIVE_LEVELS + 1))
        frame = frame_of(csv_text({"x": ages, "age": ages, "y": [0, 1] * 5 + [0]}))
        with pytest.raises(InputError) as info:
            resolve_roles(frame, target="y", sensitive=["age"])
        message = str(info.value)
        assert "'age'" in message and f"{len(ages)} distinct values" in message
        assert "sensitive_bins age=" in message

    def test_numeric_sensitive_at_the_level_limit_and_text_sensitive_are_accepted(self):
        levels = list(range(MAX_SENSITIVE_LEVELS))
        names = [f"n{i}" for i in range(3 * MAX_SENSITIVE_LEVELS)]
        frame = frame_of(csv_text({"x": names, "grade": levels * 3, "name": names, "y": [0, 1] * 15}))
        roles = resolve_roles(frame, target="y", sensitive=["grade", "name"])
        assert roles.sensitive == ("grade", "name")

    def test_binned_numeric_sensitive_is_accepted(self):
        ages = list(range(20, 60))
        frame = frame_of(csv_text({"x": ages, "age": ages, "y": [0, 1] * 20}))
        roles = resolve_roles(frame, target="y", sensitive=["age"], sensitive_bins={"age": (30.0, 50.0)})
        assert roles.sensitive_bins == {"age": (30.0, 50.0)}

    @pytest.mark.parametrize(
        "kwargs, fragment",
        [
            ({"target": "y", "sensitive": ["y"]}, "column 'y' cannot be both the target and sensitive"),
            ({"target": None, "sensitive": ["y"]}, "column 'y' cannot be both the target and sensitive"),
            ({"target": "y", "sensitive": ["sex"], "drop": ["sex"]}, "column 'sex' cannot be both sensitive and dropped"),
            ({"target": "y", "sensitive": ["sex"], "drop": ["y"]}, "column 'y' cannot be both the target and dropped"),
            (
                {"target": "y", "sensitive": ["sex"], "sensitive_bins": {"age": (40.0,)}},
                "sensitive_bins names 'age', which is not a sensitive column",
            ),
            (
                {"target": "y", "sensitive": ["sex"], "drop": ["age", "colour"]},
                "no feature columns are left",
            ),
        ],
    )
    def test_role_clashes(self, kwargs, fragment):
        with pytest.raises(InputError, match=re.escape(fragment)):
            resolve_roles(frame_of(SMALL), **kwargs)

    def test_sensitive_columns_are_features_only_on_request(self):
        frame = frame_of(SMALL)
        assert resolve_roles(frame, target="y", sensitive=["sex"]).features == ("age", "colour")
        roles = resolve_roles(frame, target="y", sensitive=["sex"], sensitive_as_feature=True)
        assert roles.features == ("age", "colour", "sex")

    def test_dropped_columns(self):
        roles = resolve_roles(frame_of(SMALL), target="y", sensitive=["sex"], drop=["colour"])
        assert roles.sensitive == ("sex",)
        assert roles.dropped == ("colour",)
        assert roles.features == ("age",)

    def test_roles_survive_json(self):
        roles = resolve_roles(
            frame_of(SMALL),
            target="y",
            sensitive=["sex", "age"],
            drop=["colour"],
            sensitive_bins={"age": (45.0,)},
            sensitive_as_feature=True,
        )
        again = ColumnRoles.from_dict(json.loads(json.dumps(roles.to_dict())))
        assert again == roles


# -- parse_bins and group labels --------------------------------------------------------
class TestBins:
    def test_parse_sorts_edges_and_keeps_columns_apart(self):
        assert parse_bins(["age=65,25", " income = 1e4 , 5e4 "]) == {"age": (25.0, 65.0), "income": (1e4, 5e4)}
        assert parse_bins([]) == {}

    @pytest.mark.parametrize("spec", ["age", "age=", "=25", "age=young", "age=25,x", "age=nan", "age=inf", "age=,"])
    def test_parse_refuses_malformed_specs(self, spec):
        with pytest.raises(InputError, match=re.escape(f"got '{spec}'")):
            parse_bins([spec])

    def test_binned_labels_put_each_edge_in_the_upper_bin(self):
        frame = frame_of(csv_text({"age": [10, 25, 40, 64.5, 65, 90, None], "y": [0, 1, 0, 1, 0, 1, 0]}))
        roles = ColumnRoles(
            target="y", positive_label="1", sensitive=("age",), features=("y",), sensitive_bins={"age": (25.0, 65.0)}
        )
        labels = group_labels(frame, roles)
        assert labels.tolist()[:6] == [
            "age<25",
            "25<=age<65",
            "25<=age<65",
            "25<=age<65",
            "age>=65",
            "age>=65",
        ]
        assert pd.isna(labels.iloc[6])

    def test_bins_on_a_non_numeric_value_are_refused(self):
        frame = frame_of(csv_text({"age": [10, "old"], "x": [1, 2], "y": [0, 1]}))
        roles = resolve_roles(frame, target="y", sensitive=["age"], sensitive_bins={"age": (30.0,)})
        with pytest.raises(InputError, match="sensitive column 'age' holds non-numeric value 'old'"):
            prepare(frame, roles)

    def test_intersectional_labels_combine_every_sensitive_column(self):
        frame = frame_of(
            csv_text(
                {
                    "x": [1, 2, 3, 4, 5, 6],
                    "sex": ["F", "M", "F", "M", "F", "M"],
                    "race": ["A", "A", "B", "B", "C", "C"],
                    "grade": [1, 1, 2, 2, 3, None],
                    "y": [0, 1, 0, 1, 0, 1],
                }
            )
        )
        roles = resolve_roles(frame, target="y", sensitive=["sex", "race", "grade"])
        labels = group_labels(frame, roles)
        # grade has a gap, so pandas reads it as float; labels must still say 1, not 1.0.
        assert labels.tolist()[:5] == ["F & A & 1", "M & A & 1", "F & B & 2", "M & B & 2", "F & C & 3"]
        assert pd.isna(labels.iloc[5])
        data = prepare(frame, roles, drop_missing=True)
        assert len(np.unique(data.groups)) == 5


# -- prepare --------------------------------------------------------------------------
class TestPrepare:
    def test_splits_a_clean_table_row_for_row(self):
        frame = frame_of(SMALL)
        roles = resolve_roles(frame, target="y", sensitive=["sex"])
        data = prepare(frame, roles, for_training=True)
        assert list(data.features.columns) == ["age", "colour"]
        assert data.y.tolist() == [1, 0, 0, 1]
        assert data.groups.tolist() == ["F", "M", "F", "M"]
        assert data.rows_dropped == 0

    def test_labels_follow_the_chosen_positive_class(self):
        frame = frame_of(csv_text({"x": [1, 2, 3, 4], "s": ["a", "b", "a", "b"], "y": ["lo", "hi", "mid", "hi"]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"], positive="hi")
        assert prepare(frame, roles).y.tolist() == [0, 1, 0, 1]

    def test_missing_target_rows_are_refused_with_count_and_lines(self):
        frame = frame_of(csv_text({"x": range(6), "s": list("ababab"), "y": [0, None, 1, 0, None, 1]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        with pytest.raises(InputError) as info:
            prepare(frame, roles)
        message = str(info.value)
        # Rows 1 and 4 are CSV lines 3 and 6: the header is line 1.
        assert message.startswith("2 row(s) have no value for target 'y' (CSV lines 3, 6)")
        assert "pass drop_missing" in message

    def test_missing_sensitive_rows_are_refused_with_count_and_lines(self):
        frame = frame_of(csv_text({"x": range(8), "s": [None] * 7 + ["a"], "t": ["u", "v"] * 4, "y": [0, 1] * 4}))
        roles = resolve_roles(frame, target="y", sensitive=["s", "t"])
        with pytest.raises(InputError) as info:
            prepare(frame, roles)
        assert str(info.value).startswith("7 row(s) have no value for sensitive 's', 't' (CSV lines 2, 3, 4, 5, 6, ...)")

    def test_drop_missing_counts_rows_missing_either(self):
        frame = frame_of(
            csv_text({"x": range(6), "s": ["a", None, "b", None, "a", "b"], "y": [0, None, 1, 0, None, 1]})
        )
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        data = prepare(frame, roles, drop_missing=True)
        assert data.rows_dropped == 3
        assert data.kept_index.tolist() == [0, 2, 5]
        assert data.y.tolist() == [0, 1, 1]
        assert data.groups.tolist() == ["a", "b", "b"]

    def test_drop_missing_that_leaves_nothing(self):
        frame = frame_of(csv_text({"x": [1, 2], "s": ["a", "b"], "y": [0, 1]}))
        frame["y"] = np.nan
        roles = ColumnRoles(target="y", positive_label="1", sensitive=("s",), features=("x",))
        with pytest.raises(InputError, match="no rows are left"):
            prepare(frame, roles, drop_missing=True)

    def test_single_group_is_refused(self):
        frame = frame_of(csv_text({"x": [1, 2, 3], "s": ["a", "a", "a"], "y": [0, 1, 0]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        with pytest.raises(InputError, match=r"sensitive attribute 's' has a single group \(a\)"):
            prepare(frame, roles)

    def test_single_group_left_after_dropping_missing_rows_is_refused(self):
        frame = frame_of(csv_text({"x": [1, 2, 3], "s": ["a", "a", "b"], "y": [0, 1, None]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        with pytest.raises(InputError, match="single group"):
            prepare(frame, roles, drop_missing=True)

    def test_all_missing_feature_is_refused_for_training_only(self):
        frame = frame_of(csv_text({"x": [1, 2, 3, 4], "empty": [None] * 4, "s": list("abab"), "y": [0, 1, 0, 1]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        with pytest.raises(InputError) as info:
            prepare(frame, roles, for_training=True)
        assert str(info.value) == "column 'empty' is entirely empty; leave it out with drop empty"
        # At evaluation the encoder imputes it like any other gap.
        assert prepare(frame, roles).features["empty"].isna().all()

    def test_feature_empty_only_in_dropped_rows_counts_as_all_missing(self):
        frame = frame_of(csv_text({"x": [1, 2, 3, 4], "f": [None, None, None, 5], "s": list("abab"), "y": [0, 1, 0, None]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        with pytest.raises(InputError, match="column 'f' is entirely empty"):
            prepare(frame, roles, drop_missing=True, for_training=True)

    def test_single_class_is_refused_for_training_only(self):
        frame = frame_of(csv_text({"x": [1, 2, 3], "s": ["a", "b", "a"], "y": [0, 1, 1]}))
        roles = resolve_roles(frame, target="y", sensitive=["s"])
        only_positive = frame.iloc[1:]
        with pytest.raises(InputError, match="single class"):
            prepare(only_positive, roles, for_training=True)
        assert prepare(only_positive, roles).y.tolist() == [1, 1]

    def test_missing_column_at_evaluation(self):
        frame = frame_of(SMALL)
        roles = resolve_roles(frame, target="y", sensitive=["sex"])
        with pytest.raises(InputError, match="column 'colour' is not in the data"):
            prepare(frame.drop(columns="colour"), roles)

    def test_prediction_needs_only_the_features(self):
        frame = frame_of(SMALL)
        roles = resolve_roles(frame, target="y", sensitive=["sex"])
        data = prepare(frame[["age", "colour"]], roles, need_target=False, need_sensitive=False)
        assert data.y is None and data.groups is None
        assert len(data.features) == 4


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["0", "1", ""]), min_size=2, max_size=30))
def test_reported_lines_are_the_lines_with_a_missing_target(cells):
    """Whatever the pattern of gaps, the named lines are exactly the empty ones in the file."""
    text = "x,s,y\n" + "".join(f"{i},{'ab'[i % 2]},{cell}\n" for i, cell in enumerate(cells))
    frame = frame_of(text)
    roles = ColumnRoles(target="y", positive_label="1", sensitive=("s",), features=("x",))
    file_lines = text.splitlines()
    empty = [number for number, line in enumerate(file_lines, start=1) if number > 1 and line.endswith(",")]
    if not empty:
        return
    with pytest.raises(InputError) as info:
        prepare(frame, roles)
    match = re.search(r"^(\d+) row\(s\).*\(CSV lines ([^)]*)\)", str(info.value))
    assert int(match.group(1)) == len(empty)
    shown = [int(n) for n in match.group(2).replace(", ...", "").split(", ")]
    assert shown == empty[:5]


# -- write_table ----------------------------------------------------------------------
def test_write_table_refuses_to_replace_without_overwrite(tmp_path):
    path = tmp_path / "out.csv.gz"
    frame = frame_of(SMALL)
    write_table(frame, path)
    with pytest.raises(InputError, match="already exists; pass overwrite"):
        write_table(frame, path)
    write_table(frame.iloc[:2], path, overwrite=True)
    assert len(read_table(path)) == 2
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_repeated_column_names_are_refused(tmp_path):
    path = tmp_path / "dup.csv"
    path.write_text("age,income,age\n1,2,3\n4,5,6\n")
    with pytest.raises(InputError, match="repeats the column name"):
        read_table(path)


def test_positive_label_case_is_forgiven_when_unambiguous():
    series = pd.Series([True, False, True])
    assert infer_positive_label(series, "y", "true") == "True"


def test_outputs_must_be_csv(tmp_path):
    with pytest.raises(InputError, match=".csv or .csv.gz"):
        write_table(pd.DataFrame({"a": [1]}), tmp_path / "scores.parquet")


# -- delimiters, Excel, column names (issue 14) -----------------------------------------
class TestDelimiters:
    @pytest.mark.parametrize(
        "name, delimiter, word",
        [("t.tsv", "\t", "tab"), ("t.txt", ";", "semicolon"), ("t.csv", "|", "pipe"), ("t.tsv.gz", "\t", "tab")],
    )
    def test_sniffed_delimiters_read_like_a_csv_and_are_announced(self, tmp_path, name, delimiter, word):
        path = tmp_path / name
        text = SMALL.replace(",", delimiter)
        if name.endswith(".gz"):
            path.write_bytes(gzip.compress(text.encode()))
        else:
            path.write_text(text)
        frame = read_table(path)
        pd.testing.assert_frame_equal(frame, frame_of(SMALL))
        assert frame.attrs["delimiter_note"].startswith(f"reading '{path}' as {word}-separated")

    def test_a_comma_file_is_not_announced(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text(SMALL)
        assert "delimiter_note" not in read_table(path).attrs

    def test_delimiters_inside_quoted_values_do_not_win(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text('a,"b;c;d",y\n"x;1;2",2,0\n"z;3;4",4,1\n')
        assert list(read_table(path).columns) == ["a", "b;c;d", "y"]

    def test_a_row_that_disagrees_with_the_header_is_not_sniffed(self, tmp_path):
        # The header splits on ';' into 3 but the first row into 1: not semicolon-separated.
        path = tmp_path / "t.csv"
        path.write_text("a;b;c\n1\n2\n")
        assert list(read_table(path).columns) == ["a;b;c"]

    @pytest.mark.parametrize("sep", ["\t", "\\t", "tab", "TAB"])
    def test_sep_spellings_of_a_tab(self, tmp_path, sep):
        path = tmp_path / "t.txt"
        path.write_text(SMALL.replace(",", "\t"))
        frame = read_table(path, sep=sep)
        assert list(frame.columns) == ["age", "colour", "sex", "y"]
        assert "delimiter_note" not in frame.attrs

    def test_sep_overrides_the_sniffed_delimiter(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text("a;b,c;y\n1;2,3;0\n4;5,6;1\n")
        assert list(read_table(path).columns) == ["a", "b,c", "y"]
        assert list(read_table(path, sep=",").columns) == ["a;b", "c;y"]

    @pytest.mark.parametrize("sep", ["", ";;", "tabs", '"', "\n"])
    def test_a_sep_that_is_not_one_character_is_refused(self, tmp_path, sep):
        path = tmp_path / "t.csv"
        path.write_text(SMALL)
        with pytest.raises(InputError, match="sep expects one character"):
            read_table(path, sep=sep)

    def test_a_wrong_delimiter_gets_a_sep_hint_when_a_column_is_missing(self, tmp_path):
        path = tmp_path / "t.csv"
        path.write_text(SMALL.replace(",", ";"))
        with pytest.raises(InputError) as info:
            resolve_roles(read_table(path, sep=","), target="y", sensitive=["sex"])
        assert str(info.value).endswith("the header holds semicolons: pass sep ';'")

    @pytest.mark.parametrize(
        "name, content",
        [
            ("book.xlsx", b"PK\x03\x04 rest of a zip"),
            ("book.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"),
            ("renamed.csv", b"PK\x03\x04\x14\x00\x06\x00"),
            ("renamed.txt", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00\x00"),
        ],
    )
    def test_excel_files_are_refused_with_an_export_hint(self, tmp_path, name, content):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(InputError) as info:
            read_table(path)
        assert str(info.value) == f"'{path}' is an Excel workbook, which sqnn does not read; export the sheet as CSV and pass that file"


class TestColumnNames:
    WIDE = ",".join([f"c{i:02d}" for i in range(24)] + ["credit", "sex", "y"]) + "\n"

    def wide_frame(self) -> pd.DataFrame:
        row = ",".join(["1"] * 24 + ["1", "F", "0"])
        row2 = ",".join(["2"] * 24 + ["2", "M", "1"])
        return frame_of(self.WIDE + row + "\n" + row2 + "\n")

    def test_every_column_is_listed(self):
        with pytest.raises(InputError) as info:
            resolve_roles(self.wide_frame(), target="label", sensitive=["sex"])
        assert str(info.value).endswith(f"(columns: {self.WIDE.strip().replace(',', ', ')})")

    @pytest.mark.parametrize("typed, meant", [("Credit", "credit"), ("CREDIT", "credit"), ("credt", "credit"), ("sexx", "sex")])
    def test_a_slip_gets_a_did_you_mean(self, typed, meant):
        with pytest.raises(InputError) as info:
            resolve_roles(self.wide_frame(), target="y", sensitive=[typed])
        assert str(info.value).startswith(f"column '{typed}' (given as sensitive) is not in the data; did you mean '{meant}'? (columns: c00, ")

    def test_columns_differing_only_in_case_are_both_suggested(self):
        frame = frame_of("Sex,sex,x,y\nF,F,1,0\nM,M,2,1\n")
        with pytest.raises(InputError, match=re.escape("did you mean 'Sex' or 'sex'?")):
            resolve_roles(frame, target="y", sensitive=["SEX"])

    def test_every_absent_column_is_named_once_with_its_suggestion(self):
        with pytest.raises(InputError) as info:
            resolve_roles(self.wide_frame(), target="y", sensitive=["Sex", "race"], drop=["credt"])
        message = str(info.value)
        assert message.startswith(
            "columns 'Sex' (given as sensitive), 'race' (given as sensitive), 'credt' (given as drop) are not in the data; "
            "did you mean 'sex' for 'Sex', 'credit' for 'credt'? (columns: "
        )

    @pytest.mark.parametrize("option, kwargs", [("sensitive", {"sensitive": ["sex", "sex"]}), ("drop", {"sensitive": ["sex"], "drop": ["age", "age"]})])
    def test_a_repeated_column_is_refused(self, option, kwargs):
        with pytest.raises(InputError) as info:
            resolve_roles(frame_of(SMALL), target="y", **kwargs)
        column = kwargs.get("drop", kwargs["sensitive"])[0]
        assert str(info.value) == f"{option} names '{column}' more than once; name each column once"

    @pytest.mark.parametrize("kwargs, role", [({"sensitive": ["y"]}, "sensitive"), ({"sensitive": ["sex"], "drop": ["y"]}, "dropped")])
    def test_a_clash_with_the_automatic_target_says_so(self, kwargs, role):
        with pytest.raises(InputError) as info:
            resolve_roles(frame_of(SMALL), target=None, **kwargs)
        assert str(info.value) == (
            f"column 'y' cannot be both the target and {role}; the target was chosen automatically as the last "
            "column, 'y': name the target with target COLUMN"
        )

    def test_a_named_target_clash_has_no_automatic_note(self):
        with pytest.raises(InputError) as info:
            resolve_roles(frame_of(SMALL), target="y", sensitive=["y"])
        assert "automatically" not in str(info.value)


class TestParquet:
    """Parquet tables read as their columns and types are stored."""

    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"age": [25, 40, 61], "group": ["a", "b", "a"], "y": [0, 1, 1]})

    def test_a_parquet_table_reads_as_written(self, tmp_path):
        self.table().to_parquet(tmp_path / "t.parquet")
        read = read_table(tmp_path / "t.parquet")
        pd.testing.assert_frame_equal(read, self.table())

    def test_a_named_index_is_a_column_and_the_target_stays_last(self, tmp_path):
        table = self.table().set_index(pd.Index(["p1", "p2", "p3"], name="person"))
        table.to_parquet(tmp_path / "t.parquet")
        read = read_table(tmp_path / "t.parquet")
        assert list(read.columns) == ["person", "age", "group", "y"] and read["person"].tolist() == ["p1", "p2", "p3"]

    def test_an_unnamed_index_is_not_a_column(self, tmp_path):
        table = self.table()
        table.index = [10, 20, 30]
        table.to_parquet(tmp_path / "t.parquet")
        assert list(read_table(tmp_path / "t.parquet").columns) == ["age", "group", "y"]

    def test_sep_and_damaged_files_are_refused_in_one_line(self, tmp_path):
        self.table().to_parquet(tmp_path / "t.parquet")
        with pytest.raises(InputError, match="sep applies to text tables"):
            read_table(tmp_path / "t.parquet", sep=";")
        (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
        with pytest.raises(InputError, match="cannot read '.*bad.parquet' as Parquet"):
            read_table(tmp_path / "bad.parquet")
        self.table().head(0).to_parquet(tmp_path / "empty.parquet")
        with pytest.raises(InputError, match="has no rows"):
            read_table(tmp_path / "empty.parquet")

    def test_without_pyarrow_the_error_says_what_to_install(self, tmp_path, monkeypatch):
        import sys

        self.table().to_parquet(tmp_path / "t.parquet")
        monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
        with pytest.raises(InputError, match=r"pip install 'sqnn\[parquet\]'"):
            read_table(tmp_path / "t.parquet")


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(["b", None, "a", "b"]),
        pd.Series([1.0, np.nan, 2.5, -0.0, 0.0, 1e300, np.inf]),
        pd.Series([3, 1, 3]),
        pd.Series([True, False, True]),
        pd.Series(["x", None, "y"], dtype="category"),
        pd.Series(pd.array([1, None], dtype="Int64")),
        pd.Series(pd.array([True, None], dtype="boolean")),
        pd.Series([True, 1, 1.0, "1", None, 0, False], dtype=object),  # True == 1, yet labels 'True' and '1'
        pd.Series([], dtype=float),
        pd.Series([np.nan, np.nan]),
    ],
)
def test_label_texts_words_every_cell_as_label_text_does(column):
    pd.testing.assert_series_equal(label_texts(column), column.map(label_text, na_action="ignore"))


@given(st.lists(st.one_of(st.none(), st.floats(allow_nan=True), st.integers(-5, 5).map(float)), max_size=30))
@settings(max_examples=60, deadline=None)
def test_label_texts_of_float_columns_equals_wording_each_cell(values):
    column = pd.Series(values, dtype=float)
    pd.testing.assert_series_equal(label_texts(column), column.map(label_text, na_action="ignore"))
