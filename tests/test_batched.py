"""Batched training (batched.py): a fold's gammas trained in one pass equal the models
trained one by one, and the sweep trains that way by default, or says why not.

Tolerance: the batched step does the one-by-one step's operations in the same order but
as batched products, so a model may differ from its lone twin by the rounding of a sum
(on the machine this was written on, its parameters and scores were bit-identical and
its history within 2.1e-7). TOLERANCE is far above that rounding and far below what a
flipped code bit or a wrong gradient would move (1e-3 and more, measured).
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.base import clone

from sqnn_cli.batched import UnbatchableMethodError, fit_gammas
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.sweep import RunTask, SweepPlan, work_units

TOLERANCE = 1e-5
GAMMAS = [0.0, 0.3, 0.7, 1.0]


@pytest.fixture(scope="module")
def table():
    from tests.conftest import synthetic_table

    frame = synthetic_table(600, seed=3)
    rng = np.random.default_rng(3)
    X = np.column_stack([frame.proxy, frame.signal, rng.normal(size=len(frame))]).astype(np.float32)
    return X, frame.y.to_numpy(), frame.group.to_numpy(), rng.uniform(0.2, 3.0, size=len(frame))


def small(**params) -> SQNNClassifier:
    return SQNNClassifier(epochs=3, batch_size=64, n_samples=8, device="cpu", **params)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("objective", ["independence", "separation"])
def test_batched_models_equal_the_models_trained_one_by_one(table, objective, weighted):
    X, y, groups, weights = table
    # 600 rows in batches of 64 end on a batch of 24: a ragged last batch is covered.
    estimator = small(objective=objective, temperature=2.0, straight_through="identity" if weighted else "sigmoid")
    sample_weight = weights if weighted else None
    batched = fit_gammas(estimator, GAMMAS, X, y, sensitive_features=groups, sample_weight=sample_weight)
    for gamma, model in zip(GAMMAS, batched):
        alone = clone(estimator).set_params(gamma=gamma).fit(X, y, sensitive_features=groups, sample_weight=sample_weight)
        assert model.gamma == gamma and model.get_params() == alone.get_params()
        np.testing.assert_allclose(model.predict_proba(X), alone.predict_proba(X), rtol=0, atol=TOLERANCE)
        assert model.threshold_ == pytest.approx(alone.threshold_, abs=TOLERANCE)
        assert model.threshold_rule_ == alone.threshold_rule_
        assert (model.classes_.tolist(), model.groups_.tolist()) == (alone.classes_.tolist(), alone.groups_.tolist())
        assert model.n_features_in_ == alone.n_features_in_ == 3
        assert [r["epoch"] for r in model.history_] == [1, 2, 3]
        for mine, theirs in zip(model.history_, alone.history_):
            for figure in ("loss", "bce", "mi"):
                assert mine[figure] == pytest.approx(theirs[figure], abs=TOLERANCE)


def test_a_batched_model_saves_and_scores_as_any_fitted_model(table):
    X, y, groups, _ = table
    model = fit_gammas(small(), [0.5], X, y, sensitive_features=groups)[0]
    description, weights = model.fitted_state()
    again = SQNNClassifier.from_fitted_state(json.loads(json.dumps(description)), weights)
    np.testing.assert_array_equal(again.predict_proba(X), model.predict_proba(X))
    assert description["params"]["gamma"] == 0.5 and description["decision_threshold"]["value"] == model.threshold_


@pytest.mark.parametrize("method", ["joint", "adversarial", "vfae"])
def test_a_method_without_a_batched_step_is_refused_naming_it(table, method):
    X, y, groups, _ = table
    with pytest.raises(UnbatchableMethodError, match=f"method {method} cannot train several models in one pass"):
        fit_gammas(SQNNClassifier(method=method, epochs=1), GAMMAS, X, y, sensitive_features=groups)


def test_the_runs_of_a_fold_go_together_split_only_for_idle_workers():
    def tasks(method: str) -> list[RunTask]:
        plan = SweepPlan(estimator_params={"method": method}, roles=None, data_sha256="", folds=3)
        return [RunTask(gamma, fold, None, None, plan) for fold in range(3) for gamma in np.linspace(0, 1, 11)]

    def shape(units) -> list[tuple[int, int]]:
        return [(unit[0].fold, len(unit)) for unit in units]

    assert shape(work_units(tasks("bernoulli"), 1)) == [(0, 11), (1, 11), (2, 11)]
    assert shape(work_units(tasks("bernoulli"), 2)) == [(0, 11), (1, 11), (2, 11)]
    # Fewer folds than workers: each fold in 2 parts, so that no worker idles.
    assert shape(work_units(tasks("bernoulli"), 4)) == [(0, 6), (0, 5), (1, 6), (1, 5), (2, 6), (2, 5)]
    assert shape(work_units(tasks("bernoulli")[:11], 2)) == [(0, 6), (0, 5)]
    assert shape(work_units(tasks("bernoulli"), 1, batched=False)) == [(fold, 1) for fold in range(3) for _ in range(11)]
    assert shape(work_units(tasks("joint"), 1)) == [(fold, 1) for fold in range(3) for _ in range(11)]


@pytest.fixture
def sweep_data(make_table):
    from sqnn_cli.data import resolve_roles
    from sqnn_cli.sweep import SweepData

    frame = make_table(160)
    return SweepData(frame, resolve_roles(frame, target=None, sensitive=["group"]))


def sweep_request(out, **params):
    from sqnn_cli.sweep import SweepRequest

    estimator = SQNNClassifier(epochs=2, hidden=(8,), code_size=4, n_samples=4, batch_size=48, **params)
    return SweepRequest(out=out, estimator=estimator, gammas=[0, 0.5, 1], folds=2)


def test_a_batched_sweep_equals_a_sweep_trained_one_by_one(sweep_data, tmp_path):
    from dataclasses import replace

    from sqnn_cli.sweep import run_sweep

    notes: list = []
    batched = run_sweep(sweep_request(tmp_path / "batched"), sweep_data, on_note=notes.append)
    alone = run_sweep(replace(sweep_request(tmp_path / "alone"), batched=False), sweep_data)
    assert str(notes[-1]) == "6 run(s) to train: 3 gammas x 2 fold(s), 1 at a time, 2 batch(es) of a fold's gammas trained together"
    records = {
        name: {(r["gamma"], r["fold"]): r for r in map(json.loads, (tmp_path / name / "runs.jsonl").read_text().splitlines())}
        for name in ("batched", "alone")
    }  # fmt: skip
    assert records["batched"].keys() == records["alone"].keys() and len(records["alone"]) == 6
    for key, record in records["batched"].items():
        theirs = records["alone"][key]
        assert record.keys() == theirs.keys()
        for metric, value in record["metrics"].items():
            if isinstance(value, float):
                assert value == pytest.approx(theirs["metrics"][metric], abs=TOLERANCE), metric
    for mine, theirs in zip(batched.summary.rows, alone.summary.rows):
        assert mine["gamma"] == theirs["gamma"]
        assert mine["auc_mean"] == pytest.approx(theirs["auc_mean"], abs=TOLERANCE)
        assert mine["gpa_mean"] == pytest.approx(theirs["gpa_mean"], abs=TOLERANCE)


def test_a_sweep_of_a_method_without_a_batched_step_trains_one_by_one_and_says_so(sweep_data, tmp_path):
    from sqnn_cli.sweep import run_sweep

    notes: list = []
    outcome = run_sweep(sweep_request(tmp_path / "joint", method="joint"), sweep_data, on_note=notes.append)
    assert outcome.summary.runs_finished == 6
    assert notes[-1].worded(lambda name: f"--{name.replace('_', '-')}") == (
        "6 run(s) to train: 3 gammas x 2 fold(s), 1 at a time; --method joint trains them one by one "
        "(only bernoulli trains a fold's gammas together)"
    )
