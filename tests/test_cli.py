"""The command line end to end on the shipped sample data, through typer's CliRunner."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import typer
import torch
from typer.testing import CliRunner

from sqnn_cli import __version__
from sqnn_cli.cli import app

from .conftest import SAMPLE_DATA, TINY_MODEL

runner = CliRunner()
COMPAS = str(SAMPLE_DATA / "compas.csv")
EVALUATE_KEYS = {
    "auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference", "eo_difference",
    "d_gpa", "d_audc", "n", "threshold", "groups",
}  # fmt: skip
GROUP_KEYS = {"group", "n", "base_rate", "selection_rate", "tpr", "fpr", "auc"}


@pytest.fixture(scope="module")
def compas_model(tmp_path_factory):
    """The command users run, target taken from the last column, default output name."""
    cwd = tmp_path_factory.mktemp("train")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(cwd)
        result = runner.invoke(app, ["train", COMPAS, "--sensitive", "race", "--gamma", "0.2", *TINY_MODEL])
    assert result.exit_code == 0, result.output
    return cwd, result


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and __version__ in result.stdout


def test_help_lists_every_command_and_each_has_an_example():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("train", "evaluate", "predict"):
        assert command in result.stdout
        page = runner.invoke(app, [command, "--help"])
        assert page.exit_code == 0 and "Examples" in page.stdout and f"sqnn {command}" in page.stdout


def test_train_announces_target_and_output(compas_model):
    cwd, result = compas_model
    assert "two_year_recid" in result.stderr and "last column" in result.stderr
    assert "compas-model" in result.stderr
    assert "next: sqnn evaluate compas-model/ TEST.csv on rows this model never saw" in result.stderr
    assert "split it first" in result.stderr
    assert result.stdout == ""  # human output never pollutes stdout
    meta = json.loads((Path(cwd) / "compas-model" / "meta.json").read_text())
    assert meta["roles"]["target"] == "two_year_recid"
    assert meta["options"]["gamma"] == 0.2
    assert len(meta["model"]["history"]) == 3
    assert re.fullmatch(r"[0-9a-f]{64}", meta["data"]["sha256"])


def test_default_output_is_the_same_path_and_is_never_silently_replaced(compas_model, monkeypatch):
    """The README's next command (`sqnn evaluate compas-model/ ...`) must find the model just
    trained: the default --out is always DATA-model, and an existing one is refused."""
    cwd, _ = compas_model
    before = (Path(cwd) / "compas-model" / "meta.json").read_bytes()
    monkeypatch.chdir(cwd)
    again = runner.invoke(app, ["train", COMPAS, "--sensitive", "race", *TINY_MODEL])
    assert again.exit_code == 2
    assert "'compas-model' already exists" in again.stderr and "--overwrite" in again.stderr and "--out" in again.stderr
    assert (Path(cwd) / "compas-model" / "meta.json").read_bytes() == before
    assert sorted(p.name for p in Path(cwd).iterdir() if p.name.startswith("compas-model")) == ["compas-model"]


def _model_threshold(cwd) -> float:
    meta = json.loads((Path(cwd) / "compas-model" / "meta.json").read_text())
    return meta["model"]["decision_threshold"]["value"]


def test_no_progress_bar_without_a_terminal(compas_model):
    _, result = compas_model
    assert "━" not in result.stderr and "training" not in result.stderr.split("\n")[0]


def test_evaluate_json_is_one_object_on_stdout(compas_model):
    cwd, _ = compas_model
    result = runner.invoke(app, ["evaluate", f"{cwd}/compas-model", COMPAS, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert EVALUATE_KEYS <= set(payload)
    chosen = _model_threshold(cwd)
    assert payload["n"] == 6172 and payload["threshold"] == chosen and payload["threshold_source"] == "training"
    assert payload["degenerate"] is False and 0 < payload["positive_rate"] < 1
    assert all(GROUP_KEYS <= set(group) for group in payload["groups"])
    assert "Native American" in payload["small_groups"]
    assert "Native American" in result.stderr  # the warning names the small groups
    small = next(g for g in payload["groups"] if g["group"] == "Native American")
    assert small["n"] < 30  # such a group's undefined rates are written as null, never NaN
    assert "NaN" not in result.stdout


def test_evaluate_table_goes_to_stderr(compas_model):
    cwd, _ = compas_model
    result = runner.invoke(app, ["evaluate", f"{cwd}/compas-model", COMPAS, "--samples", "4"])
    assert result.exit_code == 0
    assert result.stdout == "" and "GPA" in result.stderr and "African-American" in result.stderr


def test_gates_pass_and_fail_with_exit_codes(compas_model):
    cwd, _ = compas_model
    model = f"{cwd}/compas-model"
    passed = runner.invoke(app, ["evaluate", model, COMPAS, "--max-gpa", "1", "--min-auc", "0"])
    assert passed.exit_code == 0 and "passed" in passed.stderr
    failed = runner.invoke(app, ["evaluate", model, COMPAS, "--min-auc", "0.99", "--json"])
    assert failed.exit_code == 1
    assert "--min-auc" in failed.stderr and "FAILED" in failed.stderr
    assert json.loads(failed.stdout)["gates"][0]["passed"] is False


def test_ratio_gates_follow_the_four_fifths_rule_and_fail_on_a_constant_classifier(compas_model):
    cwd, _ = compas_model
    model = f"{cwd}/compas-model"
    report = json.loads(runner.invoke(app, ["evaluate", model, COMPAS, "--json"]).stdout)
    rates = [g["selection_rate"] for g in report["groups"] if g["group"] not in report["small_groups"]]
    assert report["dp_ratio"] == pytest.approx(min(rates) / max(rates))
    assert 0 <= report["eo_ratio"] <= 1 and all("ppv" in g and "fnr" in g for g in report["groups"])
    below = runner.invoke(app, ["evaluate", model, COMPAS, "--min-dp-ratio", f"{report['dp_ratio'] + 0.01:.4f}"])
    assert below.exit_code == 1 and "--min-dp-ratio" in below.stderr and "FAILED" in below.stderr
    above = runner.invoke(app, ["evaluate", model, COMPAS, "--min-dp-ratio", f"{report['dp_ratio'] - 0.01:.4f}", "--min-eo-ratio", "0"])
    assert above.exit_code == 0
    # Every row positive: every selection rate is 1, a ratio of 1 that means nothing.
    constant = runner.invoke(app, ["evaluate", model, COMPAS, "--threshold", "0", "--min-dp-ratio", "0.8", "--json"])
    assert constant.exit_code == 1 and json.loads(constant.stdout)["gates"][0]["failed_as_degenerate"] is True


def test_a_gate_that_cannot_be_estimated_fails(compas_model):
    cwd, _ = compas_model
    # With every group declared too small there is no across-group GPA to check.
    result = runner.invoke(
        app, ["evaluate", f"{cwd}/compas-model", COMPAS, "--min-group-size", "100000", "--max-gpa", "1"]
    )
    assert result.exit_code == 1 and "cannot be estimated" in result.stderr


def test_predict_writes_scores_and_keeps_rows(compas_model, tmp_path):
    cwd, _ = compas_model
    out = tmp_path / "scores.csv"
    result = runner.invoke(app, ["predict", f"{cwd}/compas-model", COMPAS, "--out", str(out)])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    original = pd.read_csv(COMPAS)
    assert list(scored.columns) == [*original.columns, "score", "prediction"]
    assert len(scored) == len(original)
    assert scored["score"].between(0, 1).all()
    # Scores are written to 6 decimals; the prediction was made from the unrounded score.
    clear = (scored["score"] - _model_threshold(cwd)).abs() > 1e-6
    assert ((scored["score"] >= _model_threshold(cwd)).astype(int) == scored["prediction"])[clear].all()
    assert (scored["score"].round(6) == scored["score"]).all()
    assert "prediction = '1' where score >=" in result.stderr


def test_predict_writes_the_targets_own_labels_and_full_precision_on_request(tmp_path):
    table = pd.read_csv(COMPAS).head(600)
    table["two_year_recid"] = table["two_year_recid"].map({1: "reoffended", 0: "did not"})
    source = tmp_path / "labelled.csv"
    table.to_csv(source, index=False)
    model = tmp_path / "model"
    assert runner.invoke(app, ["train", str(source), "-s", "race", "--positive", "reoffended", "--out", str(model), *TINY_MODEL]).exit_code == 0
    rounded, full = tmp_path / "rounded.csv", tmp_path / "full.csv"
    assert runner.invoke(app, ["predict", str(model), str(source), "--out", str(rounded)]).exit_code == 0
    assert runner.invoke(app, ["predict", str(model), str(source), "--out", str(full), "--full-precision"]).exit_code == 0
    short, long = pd.read_csv(rounded), pd.read_csv(full)
    assert set(short["prediction"]) <= {"reoffended", "did not"} and short["prediction"].nunique() == 2
    assert (short["prediction"] == long["prediction"]).all()
    assert (long["score"] - short["score"]).abs().max() <= 5e-7
    assert (long["score"].round(6) != long["score"]).any()


def test_predict_with_id_and_without_target_or_sensitive(compas_model, tmp_path):
    cwd, _ = compas_model
    table = pd.read_csv(COMPAS).drop(columns=["two_year_recid", "race"])
    table.insert(0, "person", [f"p{i}" for i in range(len(table))])
    source = tmp_path / "new.csv"
    table.to_csv(source, index=False)
    out = tmp_path / "scores.csv.gz"
    result = runner.invoke(app, ["predict", f"{cwd}/compas-model", str(source), "--out", str(out), "--id", "person"])
    assert result.exit_code == 0, result.output
    scored = pd.read_csv(out)
    assert list(scored.columns) == ["person", "score", "prediction"]
    assert scored["person"].tolist() == table["person"].tolist()


def test_predictions_are_identical_across_runs(compas_model, tmp_path):
    cwd, _ = compas_model
    outputs = []
    for name in ("a.csv", "b.csv"):
        runner.invoke(app, ["predict", f"{cwd}/compas-model", COMPAS, "--out", str(tmp_path / name)])
        outputs.append((tmp_path / name).read_bytes())
    assert outputs[0] == outputs[1]


def test_same_seed_trains_a_bit_identical_model(tmp_path):
    weights = []
    for name in ("one", "two"):
        result = runner.invoke(
            app, ["train", COMPAS, "-s", "race", "-t", "two_year_recid", "--out", str(tmp_path / name), *TINY_MODEL]
        )
        assert result.exit_code == 0, result.output
        weights.append(torch.load(tmp_path / name / "weights.pt", weights_only=True))
    assert weights[0].keys() == weights[1].keys()
    assert all(weights[0][k].equal(weights[1][k]) for k in weights[0])


def test_held_out_split_reports_metrics_and_json_summary(tmp_path):
    result = runner.invoke(
        app,
        ["train", COMPAS, "-s", "race", "--test-size", "0.3", "--json", "--out", str(tmp_path / "m"), *TINY_MODEL],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["rows_trained"] == pytest.approx(0.7 * 6172, abs=2)
    assert EVALUATE_KEYS <= set(summary["test_metrics"])
    assert summary["test_metrics"]["n"] == pytest.approx(0.3 * 6172, abs=2)


def test_intersectional_groups(tmp_path):
    result = runner.invoke(
        app,
        ["train", COMPAS, "-s", "race", "-s", "sex", "--out", str(tmp_path / "m"), "--test-size", "0.5", "--json",
         *TINY_MODEL],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    groups = {g["group"] for g in json.loads(result.stdout)["test_metrics"]["groups"]}
    assert "African-American & Male" in groups and "Caucasian & Female" in groups


@pytest.mark.parametrize("command", ["train", "sweep-gamma"])
def test_command_defaults_are_the_estimators(command):
    """What `--help` shows as each training option's default is what SQNNClassifier() uses."""
    from sqnn_cli.estimator import SQNNClassifier

    options = {p.name: p.default for p in typer.main.get_command(app).commands[command].params}
    expected = SQNNClassifier().get_params()
    flag_of = {"n_samples": "samples", "random_state": "seed"}
    for parameter in ("method", "epochs", "batch_size", "lr", "temperature", "straight_through", "n_samples",
                      "random_state", "device", "code_size", "joint_samples"):  # fmt: skip
        shown = options[flag_of.get(parameter, parameter)]
        assert getattr(shown, "value", shown) == expected[parameter], parameter
    assert tuple(int(w) for w in options["hidden"].split(",")) == tuple(expected["hidden"])
    if command == "train":  # searched when a bound is given, so shown in the help text
        help_text = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"}).stdout
        assert f"default: {expected['gamma']:g}, or searched" in help_text


def test_a_parquet_table_trains_and_scores_like_its_csv(tmp_path):
    table = pd.read_csv(COMPAS).head(800)
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    for name in ("t.csv", "t.parquet"):
        result = runner.invoke(app, ["train", str(tmp_path / name), "-s", "race", "--out", str(tmp_path / f"{name}-model"), *TINY_MODEL])
        assert result.exit_code == 0, result.output
    scores = [
        runner.invoke(app, ["evaluate", str(tmp_path / f"{name}-model"), str(tmp_path / "t.parquet"), "--json"]).stdout
        for name in ("t.csv", "t.parquet")
    ]
    assert json.loads(scores[0])["auc"] == json.loads(scores[1])["auc"]
