"""Tables read and scored a chunk at a time (data.read_table_chunks, streaming.predict_file):
the same columns, types, scores, refusals and bytes as the whole table, whatever the
chunk size."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sqnn_cli import pipeline, streaming
from sqnn_cli.bundle import load_bundle
from sqnn_cli.cli import app
from sqnn_cli.data import read_table, read_table_chunks, write_table
from sqnn_cli.errors import InputError, ParameterError
from sqnn_cli.uncertainty import BootstrapSettings

from .conftest import TINY_MODEL, synthetic_table

runner = CliRunner()
ROWS = 60
# One size per regime: a row per chunk, chunks that straddle every pattern, one chunk.
CHUNK_SIZES = (1, 7, 1000)


def tricky_table(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """The synthetic table plus columns whose type a chunk alone would get wrong: whole
    numbers with one gap near the end, whole numbers with one decimal near the end, text
    that looks numeric in most rows, booleans with a gap, a column that is empty but for
    one cell, and text with the delimiter inside quotes."""
    table = synthetic_table(rows, seed)
    count = np.arange(rows)
    table.insert(0, "age", pd.array(20 + count % 50, dtype="Int64"))
    table.loc[rows - 3, "age"] = pd.NA
    table.insert(1, "visits", (count % 5).astype(object))
    table.loc[rows - 5, "visits"] = 2.5
    table.insert(2, "code", [str(i % 4) for i in count])
    table.loc[rows - 9, "code"] = "1.50"
    table.loc[rows - 2, "code"] = "x"
    table["flag"] = pd.array(count % 3 == 0, dtype="boolean")
    table.loc[rows - 4, "flag"] = pd.NA
    table["late"] = [None] * (rows - 1) + ["only"]
    table["note"] = [f"a, b {i}" for i in count]
    return table


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("streaming")
    tricky_table().to_csv(root / "data.csv", index=False)
    options = ["-s", "group", "-t", "y", "--drop", "note", "--drop", "late", "--out", str(root / "model"), *TINY_MODEL]
    result = runner.invoke(app, ["train", str(root / "data.csv"), *options])
    assert result.exit_code == 0, result.output
    return root


@pytest.fixture(scope="module")
def fitted(workspace):
    return load_bundle(workspace / "model").model


def scoring_table(path: Path, *, unseen: bool = True) -> Path:
    """A table to score: the training table's columns, with categories and gaps that
    training never saw."""
    table = tricky_table(ROWS, seed=1)
    if unseen:
        table.loc[[3, 40], "colour"] = "purple"
        table.loc[[5, 33, 50], "signal"] = np.nan
    table.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("chunk_rows", CHUNK_SIZES)
def test_chunks_join_into_the_table_read_whole(workspace, chunk_rows):
    path = workspace / "data.csv"
    whole = read_table(path)
    table = read_table_chunks(path, chunk_rows=chunk_rows)
    chunks = list(table)
    assert len(chunks) == -(-ROWS // chunk_rows) and table.rows == ROWS
    assert table.columns == tuple(whole.columns)
    pd.testing.assert_frame_equal(pd.concat(chunks), whole, check_index_type=False)
    for chunk in chunks:
        pd.testing.assert_series_equal(chunk.dtypes, whole.dtypes)


@pytest.mark.parametrize("chunk_rows", CHUNK_SIZES)
def test_parquet_chunks_join_into_the_table_read_whole(tmp_path, chunk_rows):
    pytest.importorskip("pyarrow")
    table = pd.DataFrame({"n": pd.array([1, 2, 3, 4, 5, None, 7, 8], dtype="Int64"), "text": list("abcdefgh")})
    table["b"] = pd.array([True, False] * 3 + [None, True], dtype="boolean")
    path = tmp_path / "t.parquet"
    table.set_index(pd.Index(range(10, 18), name="id")).to_parquet(path)
    whole = read_table(path)
    chunks = list(read_table_chunks(path, chunk_rows=chunk_rows))
    pd.testing.assert_frame_equal(pd.concat(chunks), whole, check_index_type=False)
    assert [chunk.index[0] for chunk in chunks] == list(range(0, 8, chunk_rows))


def whole_table_output(fitted, source: Path, out: Path, **options) -> bytes:
    scored, _ = pipeline.predict(fitted, read_table(source), **options)
    write_table(scored, out)
    return out.read_bytes() if out.suffix != ".gz" else gzip.decompress(out.read_bytes())


@pytest.mark.parametrize("options", [{}, {"id_column": "note", "score_digits": None}])
def test_streamed_predictions_are_byte_identical_for_any_chunk_size(fitted, tmp_path, options):
    source = scoring_table(tmp_path / "new.csv")
    expected = whole_table_output(fitted, source, tmp_path / "whole.csv", **options)
    for chunk_rows in CHUNK_SIZES:
        out = tmp_path / f"chunks-{chunk_rows}.csv"
        chunks = read_table_chunks(source, chunk_rows=chunk_rows)
        streaming.predict_file(fitted, chunks, out, pipeline.PredictionSettings(**options))
        assert out.read_bytes() == expected, chunk_rows


def test_streamed_gzip_holds_the_same_rows_and_the_same_bytes_each_time(fitted, tmp_path):
    source = scoring_table(tmp_path / "new.csv")
    expected = whole_table_output(fitted, source, tmp_path / "whole.csv.gz")
    written = []
    for chunk_rows in CHUNK_SIZES:
        out = tmp_path / f"chunks-{chunk_rows}.csv.gz"
        streaming.predict_file(fitted, read_table_chunks(source, chunk_rows=chunk_rows), out)
        assert gzip.decompress(out.read_bytes()) == expected
        written.append(out.read_bytes())
    assert written[0] == written[1] == written[2]


def test_the_encoding_report_adds_up_over_chunks(fitted, tmp_path):
    source = scoring_table(tmp_path / "new.csv")
    _, whole = pipeline.predict(fitted, read_table(source))
    streamed = streaming.predict_file(fitted, read_table_chunks(source, chunk_rows=7), tmp_path / "out.csv")
    assert whole.unseen == {"colour": 2} and whole.imputed["signal"] == 3
    assert list(streamed.encoding.to_dict().items()) == list(whole.to_dict().items())
    assert streamed.rows == ROWS


def refusal(call) -> str:
    with pytest.raises(InputError) as caught:
        call()
    return str(caught.value)


def test_a_bad_row_in_a_later_chunk_is_refused_at_its_own_line(fitted, tmp_path):
    table = pd.read_csv(scoring_table(tmp_path / "new.csv", unseen=False))
    table.loc[[23, 41], "proxy"] = np.inf
    source = tmp_path / "inf.csv"
    table.to_csv(source, index=False)
    whole = refusal(lambda: pipeline.predict(fitted, read_table(source)))
    assert "CSV lines 25, 43" in whole
    out = tmp_path / "out.csv"
    streamed = refusal(lambda: streaming.predict_file(fitted, read_table_chunks(source, chunk_rows=20), out))
    # Refused chunk by chunk: the first chunk with a bad row names its lines only.
    assert streamed == whole.replace("2 infinite", "1 infinite").replace("lines 25, 43", "lines 25")
    assert not out.exists() and os.listdir(tmp_path) == ["new.csv", "inf.csv"]


def test_text_in_a_numeric_column_is_refused_at_its_line(fitted, tmp_path):
    table = pd.read_csv(scoring_table(tmp_path / "new.csv", unseen=False))
    table["signal"] = table["signal"].astype(object)
    table.loc[47, "signal"] = "n/a?"
    source = tmp_path / "text.csv"
    table.to_csv(source, index=False)
    whole = refusal(lambda: pipeline.predict(fitted, read_table(source)))
    streamed = refusal(lambda: streaming.predict_file(fitted, read_table_chunks(source, chunk_rows=7), tmp_path / "o.csv"))
    assert streamed == whole and "CSV line 49" in whole


def test_a_malformed_line_is_refused_before_anything_is_scored(fitted, tmp_path, monkeypatch):
    source = scoring_table(tmp_path / "new.csv")
    lines = source.read_text().splitlines()
    lines[50] += ",surplus"
    source.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(streaming, "scored_rows", lambda *a, **k: pytest.fail("scored a chunk of a malformed file"))
    with pytest.raises(ParameterError, match="Expected 11 fields in line 51, saw 12"):
        read_table_chunks(source, chunk_rows=7)


def test_an_interrupted_prediction_leaves_the_old_file_alone(fitted, tmp_path, monkeypatch):
    source = scoring_table(tmp_path / "new.csv")
    out = tmp_path / "out.csv"
    out.write_text("old\n")
    real, calls = streaming.scored_rows, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(streaming, "scored_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        streaming.predict_file(fitted, read_table_chunks(source, chunk_rows=7), out, overwrite=True)
    assert out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["new.csv", "out.csv"]


def test_a_file_that_changes_between_the_passes_is_refused(tmp_path):
    source = tmp_path / "t.csv"
    source.write_text("a,b\n1,x\n2,y\n3,z\n")
    table = read_table_chunks(source, chunk_rows=2)
    source.write_text("a,b\n1,x\n2,y\nthree,z\n")
    with pytest.raises(InputError, match="changed while it was being read"):
        list(table)


@pytest.mark.parametrize("text", ["", "a,b\n"])
def test_an_empty_table_is_refused_as_read_table_refuses_it(tmp_path, text):
    source = tmp_path / "t.csv"
    source.write_text(text)
    assert refusal(lambda: read_table_chunks(source)) == refusal(lambda: read_table(source))


def test_a_repeated_header_is_refused_as_read_table_refuses_it(tmp_path):
    source = tmp_path / "t.csv"
    source.write_text("a,b,a\n1,2,3\n")
    assert "repeats the column name(s) 'a'" in refusal(lambda: read_table_chunks(source))


@pytest.mark.parametrize("chunk_rows", [0, -3, 2.5, True])
def test_a_chunk_size_must_be_a_positive_whole_number(tmp_path, chunk_rows):
    with pytest.raises(ParameterError, match="chunk_rows"):
        read_table_chunks(scoring_table(tmp_path / "new.csv"), chunk_rows=chunk_rows)


def test_the_cli_writes_what_the_whole_table_gives_and_announces_the_delimiter(fitted, workspace, tmp_path):
    table = pd.read_csv(scoring_table(tmp_path / "new.csv"))
    source = tmp_path / "semi.csv"
    table.to_csv(source, sep=";", index=False)
    expected = whole_table_output(fitted, source, tmp_path / "whole.csv")
    out = tmp_path / "out.csv"
    result = runner.invoke(app, ["predict", str(workspace / "model"), str(source), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == expected
    assert "as semicolon-separated" in result.stderr and f"wrote {ROWS} scored rows" in result.stderr
    assert "2 row(s) have a value of 'colour' not seen in training" in result.stderr


# -- evaluate -------------------------------------------------------------------------
def evaluation_table(path: Path, **changes) -> Path:
    """A labelled table to evaluate, with a weight column ``w``; ``changes`` maps a column to
    {row: value} edits."""
    table = pd.read_csv(scoring_table(path))
    table["w"] = 0.5 + (np.arange(ROWS) % 3)
    for column, edits in changes.items():
        table[column] = table[column].astype(object)
        for row, value in edits.items():
            table.loc[row, column] = value
    table.to_csv(path, index=False)
    return path


WEIGHTED = pipeline.Weighting(weight="w")


def figures(evaluation) -> str:
    """Every figure of an evaluation, NaN included, in one comparable text."""
    return json.dumps(evaluation.to_dict(), sort_keys=True, default=repr)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"weighting": WEIGHTED, "threshold": 0.4, "min_group_size": 5},
        {"bootstrap": BootstrapSettings(confidence_level=0.9, n_resamples=25, seed=3), "weighting": WEIGHTED},
    ],
)
def test_streamed_evaluation_has_the_whole_tables_figures(fitted, tmp_path, options):
    source = evaluation_table(tmp_path / "labelled.csv", group={7: "c"})
    expected = figures(pipeline.evaluate(fitted, read_table(source), **options))
    for chunk_rows in CHUNK_SIZES:
        chunks = read_table_chunks(source, chunk_rows=chunk_rows)
        streamed = streaming.evaluate_file(fitted, chunks, pipeline.EvaluationSettings(**options))
        assert figures(streamed) == expected, chunk_rows
    assert '"unseen_groups": ["c"]' in expected and '"unseen_categories": {"colour": 2}' in expected


def test_chunks_with_no_row_left_are_left_out_not_refused(fitted, tmp_path):
    # Rows 0-13 (two whole chunks of 7) have no target; --drop-missing leaves them out.
    source = evaluation_table(tmp_path / "labelled.csv", y=dict.fromkeys(range(14), None))
    expected = pipeline.evaluate(fitted, read_table(source), drop_missing=True)
    chunks = read_table_chunks(source, chunk_rows=7)
    streamed = streaming.evaluate_file(fitted, chunks, pipeline.EvaluationSettings(drop_missing=True))
    assert figures(streamed) == figures(expected) and streamed.rows_dropped == 14


@pytest.mark.parametrize(
    "changes, options",
    [
        ({"y": dict.fromkeys(range(ROWS), None)}, {"drop_missing": True}),
        ({"group": dict.fromkeys(range(ROWS), "a")}, {}),
        ({"w": dict.fromkeys(range(ROWS), 0)}, {"weighting": WEIGHTED}),
        ({"y": {52: None}, "w": {33: -1}}, {"weighting": WEIGHTED}),
    ],
    ids=["no-rows-left", "one-group", "no-weight", "bad-rows"],
)
def test_streamed_evaluation_refuses_what_the_whole_table_refuses(fitted, tmp_path, changes, options):
    source = evaluation_table(tmp_path / "labelled.csv", **changes)
    whole = refusal(lambda: pipeline.evaluate(fitted, read_table(source), **options))
    chunks = read_table_chunks(source, chunk_rows=7)
    streamed = refusal(lambda: streaming.evaluate_file(fitted, chunks, pipeline.EvaluationSettings(**options)))
    if "y" in changes and "w" in changes:
        # Refused chunk by chunk: the first bad chunk's problem, at its own line.
        assert "CSV lines 35" in streamed and "CSV lines 54" in whole
    else:
        assert streamed == whole


def test_the_cli_evaluates_a_chunk_at_a_time_with_the_whole_tables_figures(fitted, workspace, tmp_path):
    source = evaluation_table(tmp_path / "labelled.csv")
    expected = pipeline.evaluate(fitted, read_table(source)).to_dict()
    result = runner.invoke(app, ["evaluate", str(workspace / "model"), str(source), "--json"])
    assert result.exit_code == 0, result.output
    shown = json.loads(result.stdout)
    assert shown["auc"] == expected["auc"] and shown["groups"] == expected["groups"]
