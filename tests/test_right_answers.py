"""Right answers on data sqnn was never tuned on (issue 11).

A chosen decision threshold, degenerate models named and failing fairness gates, target
labels checked against the bundle, scores that are a function of the row alone,
infinite and overflowing numbers, every input problem in one refusal, and the default
model on synthetic tables unlike the samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from sqnn_cli import pipeline
from sqnn_cli.cli import app
from sqnn_cli.data import resolve_roles
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.metrics import balanced_accuracy_threshold

from .synthetic_tables import TABLES, make_table
from .test_cli_errors import assert_input_error

runner = CliRunner()
SMALL = ["--epochs", "3", "--hidden", "16", "--code-size", "8", "--samples", "8"]


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def credit(n: int = 300, seed: int = 0, labels: tuple[str, str] = ("good", "bad")) -> pd.DataFrame:
    """A German-credit-like table whose target is spelled as words."""
    rng = np.random.default_rng(seed)
    sex = rng.choice(["female", "male"], n)
    amount = rng.gamma(2.0, 2000.0, n)
    duration = rng.integers(6, 60, n)
    logit = 1.2 - 0.0002 * amount + 0.3 * (sex == "male") - 0.01 * duration
    good = rng.random(n) < 1 / (1 + np.exp(-logit))
    return pd.DataFrame({"amount": amount, "duration": duration, "sex": sex, "credit": np.where(good, *labels)})


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("answers")
    credit().to_csv(root / "credit.csv", index=False)
    result = invoke("train", root / "credit.csv", "-s", "sex", "--positive", "good", "--out", root / "model", *SMALL)
    assert result.exit_code == 0, result.stderr
    return root


def evaluate_json(model: Path, data: Path, *options: object):
    result = invoke("evaluate", model, data, "--json", *options)
    return result, (json.loads(result.stdout) if result.stdout.strip() else None)


# -- the decision threshold -----------------------------------------------------------------
@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 20)), min_size=2, max_size=60))
def test_the_chosen_threshold_maximises_balanced_accuracy(pairs):
    y = np.array([p[0] for p in pairs])
    scores = np.array([p[1] for p in pairs]) / 20.0
    cut = balanced_accuracy_threshold(y, scores)
    if y.min() == y.max():
        assert cut == 0.5
        return

    def balanced(c: float) -> float:
        predicted = scores >= c
        return (predicted[y == 1].mean() + (~predicted[y == 0]).mean()) / 2

    every_cut = np.concatenate([np.unique(scores), [1.5]])
    assert balanced(cut) == pytest.approx(max(balanced(c) for c in every_cut), abs=1e-12)
    assert cut not in set(scores.tolist()) or cut == scores.min()  # never on a score, except "all positive"


def test_training_stores_the_threshold_and_evaluate_uses_it(workspace):
    meta = json.loads((workspace / "model" / "meta.json").read_text())
    stored = meta["model"]["decision_threshold"]
    assert 0 < stored["value"] < 1 and "balanced accuracy" in stored["rule"]
    result, payload = evaluate_json(workspace / "model", workspace / "credit.csv")
    assert result.exit_code == 0, result.stderr
    assert payload["threshold"] == stored["value"] and payload["threshold_source"] == "training"
    assert "decision threshold" in result.stderr and "chosen in training" in result.stderr
    given_cut = evaluate_json(workspace / "model", workspace / "credit.csv", "--threshold", "0.3")[1]
    assert given_cut["threshold"] == 0.3 and given_cut["threshold_source"] == "given"


def test_a_base_rate_of_ninety_percent_is_not_one_class():
    """At a 0.5 cut such a model predicted the majority class for every row (law school)."""
    table = make_table("base_rate_0.9", 3000)
    train, test = pipeline.split(table, test_size=0.3, stratify=["y"])
    roles = resolve_roles(train, target="y", sensitive=["group"])
    outcome = pipeline.train(train, roles, SQNNClassifier(random_state=0, device="cpu"))
    model = outcome.model
    result = pipeline.evaluate(model, test).result
    assert not result.degenerate and 0.2 < result.positive_rate < 0.99
    assert result.balanced_accuracy > 0.6
    at_half = pipeline.evaluate(model, test, threshold=0.5).result
    assert result.balanced_accuracy > at_half.balanced_accuracy


# -- degenerate models ------------------------------------------------------------------------
def test_a_constant_classifier_fails_fairness_gates_unless_allowed(workspace):
    model, data = workspace / "model", workspace / "credit.csv"
    # --threshold 0 predicts every row positive: DP and EO are 0, trivially.
    result, payload = evaluate_json(model, data, "--threshold", "0", "--max-dp", "0.1", "--max-eo", "0.1", "--min-auc", "0")
    assert result.exit_code == 1
    assert payload["degenerate"] is True and payload["dp_difference"] == 0.0 and payload["positive_rate"] == 1.0
    failed = {g["gate"]: g for g in payload["gates"]}
    assert failed["--max-dp"]["passed"] is False and failed["--max-dp"]["failed_as_degenerate"] is True
    assert failed["--min-auc"]["passed"] is True  # quality gates judge the numbers as they are
    assert "DEGENERATE" in result.stderr and "one class for every row" in result.stderr
    allowed, payload = evaluate_json(model, data, "--threshold", "0", "--max-dp", "0.1", "--allow-degenerate")
    assert allowed.exit_code == 0 and payload["gates"][0]["passed"] is True


def test_a_threshold_past_every_score_fails_dp_but_not_gpa(workspace):
    """GPA ranks scores and never looks at the threshold: a degenerate cut leaves it meaningful."""
    result, payload = evaluate_json(workspace / "model", workspace / "credit.csv", "--threshold", "1", "--max-gpa", "1", "--max-dp", "1")
    gates = {g["gate"]: g for g in payload["gates"]}
    assert payload["degenerate"] is True and payload["constant_scores"] is False
    assert gates["--max-gpa"]["passed"] is True and gates["--max-dp"]["passed"] is False
    assert result.exit_code == 1


def test_constant_scores_fail_every_fairness_gate():
    from sqnn_cli.gates import check_gates, gates_from_options
    from sqnn_cli.metrics import evaluate_scores

    y = np.array([0, 1] * 40)
    groups = np.array(["a"] * 40 + ["b"] * 40)
    result = evaluate_scores(y, np.full(80, 0.3), sensitive_features=groups)
    assert result.constant_scores and result.degenerate and result.gpa == 0.0 and result.audc == 0.0
    gates = gates_from_options({f"--max-{m}": (m, "max", 1.0) for m in ("gpa", "audc", "dp_difference", "eo_difference")})
    outcomes = check_gates(result.to_dict(), gates, degenerate=True, constant_scores=True)
    assert not any(o.passed for o in outcomes) and all(o.degenerate for o in outcomes)
    assert "one score to every row" in outcomes[0].message
    allowed = check_gates(result.to_dict(), gates, degenerate=True, constant_scores=True, allow_degenerate=True)
    assert all(o.passed for o in allowed)


def test_the_chosen_cut_never_lands_on_a_score_between_adjacent_doubles():
    for low in (0.7, 0.55, 0.3, 1e-300):
        high = np.nextafter(low, 1.0)
        cut = balanced_accuracy_threshold([0, 1], [low, high])
        assert low < cut <= high


def test_signed_zeros_are_the_same_row(fitted):
    model, _ = fitted
    rows = np.zeros((2, 6), dtype=np.float32)
    rows[1, 2] = -0.0
    scores = model.predict_proba(rows)[:, 1]
    assert scores[0] == scores[1]


def test_min_balanced_accuracy_gate(workspace):
    model, data = workspace / "model", workspace / "credit.csv"
    assert invoke("evaluate", model, data, "--threshold", "0", "--min-balanced-accuracy", "0.55").exit_code == 1
    assert invoke("evaluate", model, data, "--min-balanced-accuracy", "0.05").exit_code == 0


def test_train_names_a_degenerate_held_out_split(tmp_path):
    path = tmp_path / "t.csv"
    credit(400).to_csv(path, index=False)
    result = invoke("train", path, "-s", "sex", "--positive", "good", "--test-size", "0.3", "--threshold", "1",
                    "--out", tmp_path / "m", "--json", *SMALL)  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["test_metrics"]["degenerate"] is True
    assert "DEGENERATE" in result.stderr


# -- target labels -------------------------------------------------------------------------------
@pytest.mark.parametrize("labels", [("1", "0"), ("yes", "no"), ("good", "so-so")])
def test_target_labels_the_model_never_saw_are_refused(workspace, tmp_path, labels):
    recoded = tmp_path / "recoded.csv"
    credit(labels=labels).to_csv(recoded, index=False)
    line = assert_input_error(invoke("evaluate", workspace / "model", recoded, "--max-dp", "0.1"), "not trained on")
    for label in labels:
        if label not in ("good", "bad"):
            assert repr(label) in line
    assert "'bad', 'good'" in line and "positive class 'good'" in line


def test_target_labels_in_another_case_are_the_same_labels(workspace, tmp_path):
    shouted = tmp_path / "shouted.csv"
    credit(labels=("GOOD", "BAD")).to_csv(shouted, index=False)
    result, payload = evaluate_json(workspace / "model", shouted)
    expected = evaluate_json(workspace / "model", workspace / "credit.csv")[1]
    assert result.exit_code == 0, result.stderr
    assert payload["auc"] == expected["auc"] and payload["groups"][0]["base_rate"] == expected["groups"][0]["base_rate"]


def test_groups_unseen_in_training_are_evaluated_and_named(workspace, tmp_path):
    table = credit(seed=1)
    table.loc[:59, "sex"] = "diverse"
    path = tmp_path / "more_groups.csv"
    table.to_csv(path, index=False)
    result, payload = evaluate_json(workspace / "model", path)
    assert result.exit_code == 0, result.stderr
    assert payload["unseen_groups"] == ["diverse"]
    assert "diverse" in {g["group"] for g in payload["groups"]}
    assert "'diverse' did not occur in training" in result.stderr


# -- scores are a function of the row ---------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    X[:50] = X[50:100]  # duplicated rows, which must score alike too
    y = (X[:, 0] + rng.normal(size=400) > 0).astype(int)
    model = SQNNClassifier(epochs=2, hidden=(16,), code_size=8, n_samples=16, device="cpu")
    return model.fit(X, y, sensitive_features=rng.choice(["a", "b"], 400)), X


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_a_rows_score_is_the_same_in_any_order_or_subset(fitted, data):
    model, X = fitted
    full = model.predict_proba(X)[:, 1]
    rows = data.draw(st.lists(st.integers(0, len(X) - 1), min_size=1, max_size=120, unique=True))
    order = np.array(data.draw(st.permutations(rows)))
    assert np.array_equal(model.predict_proba(X[order])[:, 1], full[order])  # to the bit
    assert np.array_equal(model.binary_codes(X[order]), model.binary_codes(X)[order])


def test_duplicated_rows_score_alike_and_reversed_views_work(fitted):
    model, X = fitted
    scores = model.predict_proba(X)[:, 1]
    assert np.array_equal(scores[:50], scores[50:100])
    assert np.array_equal(model.predict_proba(X[::-1])[:, 1], scores[::-1])


def test_evaluate_on_a_subset_agrees_with_predict_on_the_whole(workspace, tmp_path):
    model, data = workspace / "model", workspace / "credit.csv"
    assert invoke("predict", model, data, "--out", tmp_path / "all.csv").exit_code == 0
    whole = pd.read_csv(tmp_path / "all.csv")
    subset = pd.read_csv(data).iloc[::-3]
    subset.to_csv(tmp_path / "subset.csv", index=False)
    assert invoke("predict", model, tmp_path / "subset.csv", "--out", tmp_path / "part.csv").exit_code == 0
    part = pd.read_csv(tmp_path / "part.csv")
    assert np.array_equal(part["score"].to_numpy(), whole["score"].to_numpy()[::-3])


# -- infinite and overflowing numbers --------------------------------------------------------------
@pytest.mark.parametrize("command", ["train", "evaluate", "predict"])
def test_infinite_numbers_are_refused_with_column_and_line(workspace, tmp_path, command):
    table = credit(seed=2)
    table["amount"] = table["amount"].astype(object)
    table.loc[4, "amount"], table.loc[9, "amount"] = "inf", "-inf"
    path = tmp_path / "inf.csv"
    table.to_csv(path, index=False)
    args = {
        "train": ("train", path, "-s", "sex", "--positive", "good", "--out", tmp_path / "m", *SMALL),
        "evaluate": ("evaluate", workspace / "model", path),
        "predict": ("predict", workspace / "model", path, "--out", tmp_path / "s.csv"),
    }[command]
    assert_input_error(invoke(*args), "'amount' has 2 infinite or overflowing value(s)", "CSV lines 6, 11", "--inf-as-missing")
    result = invoke(*args, "--inf-as-missing")
    assert result.exit_code == 0, result.stderr
    assert "missing value(s) in 'amount'" in result.stderr or command == "train"


def test_numbers_whose_square_overflows_are_refused_like_infinities(tmp_path):
    """1e308 is finite, but its variance overflows; computed carefully, it would crush every
    other value of its column to 0, a silent loss of the feature."""
    table = credit(seed=3)
    table.loc[:2, "amount"] = [1e308, -1e308, 1.7e308]
    path = tmp_path / "huge.csv"
    table.to_csv(path, index=False)
    train = ("train", path, "-s", "sex", "--positive", "good", "--out", tmp_path / "m", *SMALL)
    assert_input_error(invoke(*train), "'amount' has 3 infinite or overflowing value(s)", "CSV lines 2, 3, 4")
    assert invoke(*train, "--inf-as-missing").exit_code == 0


def test_large_finite_numbers_train_and_score_without_nan(tmp_path):
    table = credit(seed=3)
    table.loc[:2, "amount"] = [1e150, -1e150, 3e153]
    path = tmp_path / "large.csv"
    table.to_csv(path, index=False)
    trained = invoke("train", path, "-s", "sex", "--positive", "good", "--out", tmp_path / "m", *SMALL)
    assert trained.exit_code == 0, trained.stderr
    scored = invoke("predict", tmp_path / "m", path, "--out", tmp_path / "s.csv")
    assert scored.exit_code == 0, scored.stderr
    scores = pd.read_csv(tmp_path / "s.csv")["score"]
    assert scores.notna().all() and np.isfinite(scores).all()


def test_standardising_extreme_values_never_makes_nan():
    from sqnn_cli.preprocess import CLIP, TabularEncoder

    train = pd.DataFrame({"x": [1e153, -1e153, 0.0, 1.0, 2.0]})
    encoder = TabularEncoder().fit(train)
    spec = encoder.columns_[0]
    assert np.isfinite([spec["mean"], spec["scale"]]).all()
    matrix, report = encoder.transform(pd.DataFrame({"x": [1e154, 1.0]}))
    assert np.isfinite(matrix).all() and not report.clipped
    tiny_scale = TabularEncoder().fit(pd.DataFrame({"x": [0.0, 1e-9, 2e-9]}))
    matrix, report = tiny_scale.transform(pd.DataFrame({"x": [1e150, 0.0]}))
    assert matrix[0, 0] == CLIP and report.clipped == {"x": 1}


# -- every problem at once ------------------------------------------------------------------------------
def test_every_input_problem_is_reported_in_one_refusal(workspace, tmp_path):
    table = credit(seed=4)
    table["amount"] = table["amount"].astype(object)
    table.loc[3, "credit"] = None
    table.loc[7, "sex"] = None
    table.loc[8, "amount"] = "inf"
    table.loc[10, "credit"] = "unknown"
    path = tmp_path / "broken.csv"
    table.to_csv(path, index=False)
    line = assert_input_error(invoke("evaluate", workspace / "model", path), "4 problems")
    for fragment in ("target 'credit'", "sensitive 'sex'", "infinite", "'unknown'"):
        assert fragment in line


# -- the default model on tables unlike the samples ---------------------------------------------------------
@pytest.mark.parametrize("name", sorted(TABLES))
def test_the_default_model_is_not_degenerate_on_synthetic_tables(name):
    table = make_table(name, 2000, seed=1)
    train, test = pipeline.split(table, test_size=0.3, stratify=["y"])
    roles = resolve_roles(train, target="y", sensitive=["group"])
    outcome = pipeline.train(train, roles, SQNNClassifier(device="cpu"))
    model = outcome.model
    result = pipeline.evaluate(model, test).result
    assert not result.degenerate, (name, result.positive_rate, result.threshold)


# -- sweeps ---------------------------------------------------------------------------------------------
def _record(gamma: float, fold: int, auc: float, gpa: float, degenerate: bool) -> dict:
    metrics = {"auc": auc, "gpa": gpa, "audc": gpa, "dp_difference": 0.0 if degenerate else 0.2, "degenerate": degenerate}
    metrics |= {"d_gpa": 1 - auc + gpa, "d_audc": 1 - auc + gpa, "accuracy": 0.7, "balanced_accuracy": 0.7, "eo_difference": 0.1}
    return {"gamma": gamma, "fold": fold, "metrics": metrics}


def test_a_sweep_never_chooses_a_degenerate_gamma_and_says_so():
    from sqnn_cli.sweep import summarise

    records = [_record(0.0, f, 0.80, 0.20, False) for f in range(2)]
    # gamma 1 looks best on every criterion only because one fold put every row in one class
    records += [_record(1.0, 0, 0.79, 0.0, True), _record(1.0, 1, 0.79, 0.0, False)]
    summary = summarise(records, runs_planned=4, folds=2)
    assert [r["degenerate_folds"] for r in summary.rows] == [0, 1]
    assert summary.best_by_d_gpa == summary.best_by_criterion == 0.0
    assert any("DEGENERATE" in note and "1 (1 of 2)" in note for note in summary.notes)


def test_sweep_runs_score_at_their_own_thresholds(tmp_path):
    path = tmp_path / "credit.csv"
    credit(400).to_csv(path, index=False)
    result = invoke("sweep-gamma", path, "-s", "sex", "--positive", "good", "--gammas", "0,0.5", "--folds", "2",
                    "--out", tmp_path / "sweep", "--json", "--hidden", "16", "--code-size", "8", "--samples", "8")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    runs = [json.loads(line) for line in (tmp_path / "sweep" / "runs.jsonl").read_text().splitlines()]
    thresholds = [run["metrics"]["threshold"] for run in runs]
    assert len(set(thresholds)) > 1 and 0.5 not in thresholds, thresholds
    assert all(run["metrics"]["degenerate"] is False for run in runs)
    assert all(row["degenerate_folds"] == 0 for row in json.loads(result.stdout)["gammas"])


def test_an_infinity_in_a_column_read_as_text_follows_the_same_rule(workspace, tmp_path):
    """A numeric column with one stray word is read as text; its 'inf' is found by the encoder."""
    table = credit(seed=5)
    table["amount"] = table["amount"].astype(object)
    table.loc[5, "amount"], table.loc[6, "amount"] = "inf", "n/a"
    path = tmp_path / "mixed.csv"
    table.to_csv(path, index=False)
    assert_input_error(invoke("evaluate", workspace / "model", path), "'amount'")
    table.loc[6, "amount"] = None
    table.to_csv(path, index=False)
    result = invoke("evaluate", workspace / "model", path, "--inf-as-missing")
    assert result.exit_code == 0, result.stderr
    assert "missing value(s) in 'amount'" in result.stderr


def test_a_pruned_model_chooses_its_threshold_again(workspace, tmp_path):
    out = tmp_path / "pruned"
    result = invoke("prune", workspace / "model", workspace / "credit.csv", "--k", "6", "--out", out)
    assert result.exit_code == 0, result.stderr
    chosen = json.loads((out / "meta.json").read_text())["model"]["decision_threshold"]
    assert "the pruning was ranked on" in chosen["rule"] and "credit.csv" in chosen["rule"]
    payload = evaluate_json(out, workspace / "credit.csv")[1]
    assert payload["threshold"] == chosen["value"] and payload["degenerate"] is False


def test_the_tradeoff_plot_draws_when_no_gamma_has_a_gpa_or_audc(tmp_path):
    from sqnn_cli.report import plot_tradeoff
    from sqnn_cli.sweep import summarise

    records = [_record(g, 0, 0.7, 0.1, False) for g in (0.0, 0.5)]
    for record in records:
        record["metrics"] |= {"gpa": None, "audc": None, "d_gpa": None, "d_audc": None}
    path = plot_tradeoff(summarise(records, runs_planned=2, folds=1), tmp_path / "t.png", title="t")
    assert path.stat().st_size > 0


def test_json_output_is_one_object_on_failure_too(workspace, tmp_path):
    recoded = tmp_path / "recoded.csv"
    credit(labels=("1", "0")).to_csv(recoded, index=False)
    result, payload = evaluate_json(workspace / "model", recoded)
    assert result.exit_code == 2
    assert payload["exit_code"] == 2 and "not trained on" in payload["error"]
    assert result.stderr.count("error:") == 1
