"""`--weight COL` from the command line: training, the bundle's roles, every metric of
evaluate, sweep-gamma and the audit, and the refusals of bad weight columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from .conftest import TINY_MODEL, synthetic_table
from sqnn_cli.bundle import load_bundle
from sqnn_cli.cli import app
from sqnn_cli.metrics import demographic_parity_difference, evaluate_scores

runner = CliRunner()


def weighted_table(n: int = 400, seed: int = 0) -> pd.DataFrame:
    table = synthetic_table(n, seed)
    table["w"] = np.random.default_rng(seed + 1).integers(0, 4, n).astype(float)
    return table


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("weights")
    weighted_table().to_csv(root / "data.csv", index=False)
    result = runner.invoke(app, ["train", str(root / "data.csv"), "-t", "y", "-s", "group", "--weight", "w", *TINY_MODEL, "--out", str(root / "model")])
    assert result.exit_code == 0, result.output
    return root


def evaluate_json(model: Path, data: Path, *options: str) -> dict:
    result = runner.invoke(app, ["evaluate", str(model), str(data), "--json", *options])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_bundle_records_the_weight_column_and_keeps_it_out_of_the_features(model):
    roles = load_bundle(model).model.roles
    assert roles.weight == "w"
    assert "w" not in roles.features


def test_evaluate_weighs_by_the_models_weight_column_as_the_library_does(model, data):
    report = evaluate_json(model, data)
    assert report["sample_weight_column"] == "w"
    fitted = load_bundle(model).model
    table = pd.read_csv(data)
    X, _ = fitted.encoder.transform(table[list(fitted.roles.features)])
    scores = fitted.estimator.predict_proba(X)[:, 1]
    y = (table["y"] == 1).to_numpy().astype(int)
    expected = evaluate_scores(y, scores, sensitive_features=table["group"].to_numpy(), threshold=report["threshold"], sample_weight=table["w"].to_numpy())
    assert report["auc"] == pytest.approx(expected.auc, abs=1e-12)
    assert report["dp_difference"] == pytest.approx(expected.dp_difference, abs=1e-12)
    assert report["gpa"] == pytest.approx(expected.gpa, abs=1e-12)
    unweighted = evaluate_json(model, data, "--unweighted")
    assert unweighted["sample_weight_column"] is None
    assert unweighted["dp_difference"] != report["dp_difference"]
    predictions = (scores >= report["threshold"]).astype(int)
    assert unweighted["dp_difference"] == pytest.approx(
        demographic_parity_difference(y, predictions, sensitive_features=table["group"].to_numpy()), abs=1e-12
    )


def test_a_row_of_weight_k_counts_as_k_copies_of_it(model, data, tmp_path):
    table = pd.read_csv(data)
    repeated = table.loc[table.index.repeat(table["w"].astype(int))].assign(w=1.0)
    repeated.to_csv(tmp_path / "repeated.csv", index=False)
    weighted, copies = evaluate_json(model, data), evaluate_json(model, tmp_path / "repeated.csv")
    for metric in ("auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference", "eo_difference", "dp_ratio", "eo_ratio"):
        assert weighted[metric] == pytest.approx(copies[metric], abs=1e-9), metric


def test_evaluate_refuses_a_table_without_the_models_weight_column(model, data, tmp_path):
    pd.read_csv(data).drop(columns="w").to_csv(tmp_path / "unweighted.csv", index=False)
    result = runner.invoke(app, ["evaluate", str(model), str(tmp_path / "unweighted.csv")])
    assert result.exit_code == 2
    assert "sample weights from column 'w', which the data lacks" in result.output
    assert "--weight COLUMN" in result.output and "--unweighted" in result.output
    assert runner.invoke(app, ["evaluate", str(model), str(tmp_path / "unweighted.csv"), "--unweighted"]).exit_code == 0


def test_another_weight_column_can_be_named_when_scoring(model, data, tmp_path):
    pd.read_csv(data).rename(columns={"w": "survey"}).to_csv(tmp_path / "renamed.csv", index=False)
    renamed = evaluate_json(model, tmp_path / "renamed.csv", "--weight", "survey")
    assert renamed["sample_weight_column"] == "survey"
    assert renamed["dp_difference"] == pytest.approx(evaluate_json(model, data)["dp_difference"], abs=1e-12)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--weight", "w", "--unweighted"], "--weight and --unweighted contradict each other"),
        (["--weight", "group"], "column 'group' cannot be both sensitive and the sample weight"),
    ],
)
def test_contradictory_weighting_is_refused(model, data, options, message):
    result = runner.invoke(app, ["evaluate", str(model), str(data), *options])
    assert result.exit_code == 2
    assert message in result.output


def test_every_bad_weight_is_reported_at_once_with_its_csv_line(tmp_path):
    table = weighted_table()
    table["w"] = table["w"].astype(object)
    table.loc[2, "w"], table.loc[5, "w"], table.loc[6, "w"] = -1.0, "heavy", None
    table.to_csv(tmp_path / "bad.csv", index=False)
    result = runner.invoke(app, ["train", str(tmp_path / "bad.csv"), "-t", "y", "-s", "group", "--weight", "w", *TINY_MODEL, "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "2 problems in the data" in result.output
    assert "no value for weight 'w' (CSV lines 8)" in result.output
    assert "weight column 'w' must hold finite numbers >= 0; 2 row(s) do not (CSV lines 4, 7" in result.output
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ("zero", "every row left has weight 0 in weight column 'w'"),
        ("inf", "weight column 'w' must hold finite numbers >= 0"),
    ],
)
def test_weights_that_weigh_nothing_or_everything_are_refused(tmp_path, weights, message):
    table = weighted_table()
    table["w"] = 0.0 if weights == "zero" else np.where(np.arange(len(table)) == 3, np.inf, 1.0)
    table.to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["train", str(tmp_path / "t.csv"), "-t", "y", "-s", "group", "--weight", "w", *TINY_MODEL, "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert message in result.output


@pytest.mark.parametrize(
    ("column", "message"),
    [("y", "column 'y' cannot be both the target and the sample weight"), ("nope", "column 'nope' (given as --weight) is not in the data")],
)
def test_train_refuses_a_weight_column_that_is_another_role_or_absent(tmp_path, column, message):
    weighted_table().to_csv(tmp_path / "t.csv", index=False)
    result = runner.invoke(app, ["train", str(tmp_path / "t.csv"), "-t", "y", "-s", "group", "--weight", column, "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert message in result.output


def test_predict_needs_no_weight_column(model, data, tmp_path):
    pd.read_csv(data).drop(columns=["w", "y"]).to_csv(tmp_path / "new.csv", index=False)
    result = runner.invoke(app, ["predict", str(model), str(tmp_path / "new.csv"), "--out", str(tmp_path / "scores.csv")])
    assert result.exit_code == 0, result.output
    assert "w" not in pd.read_csv(tmp_path / "scores.csv").columns


def test_sweep_gamma_trains_and_validates_with_weights(data, tmp_path):
    options = ["-t", "y", "-s", "group", "--gammas", "0,0.5", "--folds", "2", *TINY_MODEL]
    weighted = runner.invoke(app, ["sweep-gamma", str(data), *options, "--weight", "w", "--out", str(tmp_path / "a"), "--json"])
    plain = runner.invoke(app, ["sweep-gamma", str(data), *options, "--out", str(tmp_path / "b"), "--json"])
    assert weighted.exit_code == 0 and plain.exit_code == 0, weighted.output + plain.output
    first = [json.loads(result.stdout)["gammas"][0] for result in (weighted, plain)]
    assert first[0]["auc_mean"] != first[1]["auc_mean"]


def test_the_weighted_audit_runs_and_says_so(model, data):
    result = runner.invoke(app, ["audit-representation", str(model), str(data), "--trees", "10", "--n-jobs", "1", "--json"])
    assert result.exit_code == 0, result.output
    unweighted = runner.invoke(app, ["audit-representation", str(model), str(data), "--trees", "10", "--n-jobs", "1", "--json", "--unweighted"])
    weighted, plain = json.loads(result.stdout), json.loads(unweighted.stdout)
    assert (weighted["sample_weight_column"], plain["sample_weight_column"]) == ("w", None)
    assert weighted["mi_joint"] != plain["mi_joint"]


def test_weights_of_any_scale_train_and_score(tmp_path):
    """Weights near the largest accepted (1e154, whose products overflow a double) and
    far below 1 (1e-300, below float32's range) change nothing but their ratios."""
    table = weighted_table()
    table["w"] = np.where(np.arange(len(table)) % 2 == 0, 1e154, 1e-300)
    table.to_csv(tmp_path / "t.csv", index=False)
    trained = runner.invoke(app, ["train", str(tmp_path / "t.csv"), "-t", "y", "-s", "group", "--weight", "w", *TINY_MODEL, "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    report = evaluate_json(tmp_path / "m", tmp_path / "t.csv", "--ci", "0.9", "--bootstrap", "50")
    halved = table.iloc[::2].assign(w=1.0)
    halved.to_csv(tmp_path / "even.csv", index=False)
    even = evaluate_json(tmp_path / "m", tmp_path / "even.csv")
    for metric in ("auc", "gpa", "dp_difference"):
        assert report[metric] == pytest.approx(even[metric], abs=1e-9), metric
    assert report["intervals"]["gpa"] is not None
