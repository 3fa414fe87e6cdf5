"""Tables that are not comma-separated, Excel files and column-role slips, through the CLI
(issue 14): one `error:` line and exit 2 for what the user can fix, a delimiter note otherwise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from sqnn_cli.cli import app

TINY = ["--epochs", "1", "--hidden", "8", "--code-size", "4", "--samples", "2"]
runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def error_line(result) -> str:
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exit_code == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def table(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sex = rng.choice(["F", "M"], n)
    age = rng.integers(18, 80, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-0.05 * (age - 45) - 0.8 * (sex == "M")))).astype(int)
    return pd.DataFrame({"age": age, "note": rng.choice(["a,b", "c"], n), "sex": sex, "y": y})


@pytest.fixture(scope="module")
def tsv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tables") / "data.tsv"
    table().to_csv(path, sep="\t", index=False)
    return path


def test_a_tsv_trains_evaluates_and_predicts(tsv, tmp_path):
    result = invoke("train", tsv, "-s", "sex", "--out", tmp_path / "m", *TINY)
    assert result.exit_code == 0, result.stderr
    assert f"reading '{tsv}' as tab-separated" in result.stderr
    assert "error:" not in result.stderr
    evaluated = invoke("evaluate", tmp_path / "m", tsv, "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    predicted = invoke("predict", tmp_path / "m", tsv, "--sep", "tab", "--out", tmp_path / "p.csv")
    assert predicted.exit_code == 0, predicted.stderr
    assert "as tab-separated" not in predicted.stderr  # a delimiter the user gave is not announced
    assert len(pd.read_csv(tmp_path / "p.csv")) == 120


def test_a_comma_file_is_not_announced(tmp_path):
    path = tmp_path / "data.csv"
    table().to_csv(path, index=False)
    result = invoke("split", path, "--train", tmp_path / "a.csv", "--test", tmp_path / "b.csv")
    assert result.exit_code == 0, result.stderr
    assert "separated" not in result.stderr


def test_sep_overrides_the_sniffed_delimiter(tmp_path):
    path = tmp_path / "data.tsv"
    table().drop(columns="note").to_csv(path, sep="\t", index=False)
    # Read as comma-separated, the TSV's header is one column with tabs in its name.
    line = error_line(invoke("train", path, "-s", "sex", "--sep", ",", "--out", tmp_path / "m"))
    assert "'sex' (given as --sensitive) is not in the data" in line and line.endswith("the header holds tabs: pass --sep tab")


def test_a_semicolon_file_splits_and_its_halves_sweep(tmp_path):
    path = tmp_path / "data.txt"
    table().to_csv(path, sep=";", index=False)
    result = invoke("split", path, "--train", tmp_path / "train.csv", "--test", tmp_path / "test.csv")
    assert result.exit_code == 0, result.stderr
    assert "as semicolon-separated" in result.stderr
    assert list(pd.read_csv(tmp_path / "train.csv").columns) == ["age", "note", "sex", "y"]
    # --sep applies to --test as well: both files semicolon-separated, delimiter given.
    for name in ("train", "test"):
        pd.read_csv(tmp_path / f"{name}.csv").to_csv(tmp_path / f"{name}.txt", sep=";", index=False)
    swept = invoke(
        "sweep-gamma", tmp_path / "train.txt", "-s", "sex", "--test", tmp_path / "test.txt", "--sep", ";",
        "--gammas", "0", "--out", tmp_path / "sweep", *TINY,
    )  # fmt: skip
    assert swept.exit_code == 0, swept.stderr
    assert "separated" not in swept.stderr
    # Proof that --test is read with --sep and not sniffed: ',' cannot parse test.txt
    # (its "a,b" values), and the refusal names the delimiter it looks like.
    line = error_line(
        invoke("sweep-gamma", tmp_path / "train.csv", "-s", "sex", "--test", tmp_path / "test.txt", "--sep", ",",
               "--gammas", "0", "--out", tmp_path / "sweep2", *TINY)
    )  # fmt: skip
    assert f"cannot read '{tmp_path / 'test.txt'}'" in line and line.endswith("it looks semicolon-separated: pass --sep ';'")


def test_a_bad_sep_is_refused(tsv, tmp_path):
    line = error_line(invoke("train", tsv, "-s", "sex", "--sep", "tabs", "--out", tmp_path / "m"))
    assert line == "error: --sep expects one character (or 'tab', '\\t'), got 'tabs'"


def test_an_excel_file_is_refused_with_an_export_hint(tmp_path):
    path = tmp_path / "data.xlsx"
    path.write_bytes(b"PK\x03\x04" + bytes(range(256)))
    line = error_line(invoke("train", path, "-s", "sex", "--out", tmp_path / "m"))
    assert "is an Excel workbook" in line and "export the sheet as CSV" in line
    assert "decode" not in line


def test_a_case_slip_gets_did_you_mean(tsv, tmp_path):
    line = error_line(invoke("train", tsv, "-s", "Sex", "--out", tmp_path / "m"))
    assert line == "error: column 'Sex' (given as --sensitive) is not in the data; did you mean 'sex'? (columns: age, note, sex, y)"


@pytest.mark.parametrize("options, option, column", [(["-s", "sex", "-s", "sex"], "--sensitive", "sex"), (["-s", "sex", "--drop", "note", "--drop", "note"], "--drop", "note")])
def test_a_repeated_column_option_is_refused(tsv, tmp_path, options, option, column):
    line = error_line(invoke("train", tsv, *options, "--out", tmp_path / "m"))
    assert line == f"error: {option} names '{column}' more than once; name each column once"
    assert not (tmp_path / "m").exists()


def test_the_automatic_target_is_named_in_its_clash(tsv, tmp_path):
    line = error_line(invoke("train", tsv, "-s", "y", "--out", tmp_path / "m"))
    assert "the target was chosen automatically as the last column, 'y'" in line
    assert "--target COLUMN" in line
