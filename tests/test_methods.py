"""Every method and objective through the estimator, the bundle and the command line; the
methods' own steps are tested in test_adversarial.py, test_vfae.py and test_training.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sqnn_cli import defaults
from sqnn_cli.bundle import load_bundle, save_bundle
from sqnn_cli.cli import app
from sqnn_cli.data import ColumnRoles
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.fitted import FittedModel
from sqnn_cli.metrics import demographic_parity_difference
from sqnn_cli.preprocess import TabularEncoder

from .conftest import TINY_MODEL, synthetic_table
from .tampering import read_meta, write_meta

runner = CliRunner()
METHODS = defaults.METHODS
OBJECTIVES = defaults.OBJECTIVES
ROLES = ColumnRoles(target="y", positive_label="1", sensitive=("group",), features=("proxy", "signal", "colour"))
SMALL = dict(hidden=(8,), code_size=4, epochs=2, batch_size=64, device="cpu")


@pytest.fixture(scope="module")
def encoded():
    table = synthetic_table(300)
    features = table[list(ROLES.features)]
    encoder = TabularEncoder().fit(features)
    x, _ = encoder.transform(features)
    return encoder, x, table["y"].to_numpy(), table["group"].to_numpy()


@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("method", METHODS)
def test_every_method_and_objective_fits_scores_and_round_trips_a_bundle(tmp_path, encoded, method, objective):
    encoder, x, y, s = encoded
    model = SQNNClassifier(gamma=0.5, method=method, objective=objective, **SMALL).fit(x, y, sensitive_features=s)
    assert len(model.history_) == 2 and {"loss", "bce"} <= set(model.history_[-1])
    scores = model.predict_proba(x)
    assert np.all((scores >= 0) & (scores <= 1))
    assert model.binary_codes(x).shape == (len(x), 4)
    loaded = load_bundle(save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta={})).model.estimator
    assert (loaded.method, loaded.objective) == (method, objective)
    assert np.array_equal(loaded.predict_proba(x), scores)
    assert np.array_equal(loaded.binary_codes(x), model.binary_codes(x))


@pytest.mark.parametrize("method", METHODS)
def test_the_bundle_loader_knows_each_methods_tensors(method):
    model = SQNNClassifier(method=method, **SMALL)
    model.groups_ = np.array(["a", "b", "c"])
    network = model._initial_network(5, "cpu")
    assert model.network_shapes(5, 3) == {name: tuple(t.shape) for name, t in network.state_dict().items()}


def test_the_adversary_records_its_accuracy_each_epoch(encoded):
    _, x, y, s = encoded
    model = SQNNClassifier(gamma=0.5, method="adversarial", **SMALL).fit(x, y, sensitive_features=s)
    assert 0.0 <= model.history_[-1]["adversary_accuracy"] <= 1.0


def test_a_version_1_bundle_still_loads(tmp_path, encoded):
    """Bundles written before weights, objectives and the baselines: no roles.weight, no
    params.objective, schema version 1."""
    encoder, x, y, s = encoded
    model = SQNNClassifier(**SMALL).fit(x, y, sensitive_features=s)
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta={})
    meta = read_meta(path)
    meta["schema_version"] = 1
    del meta["roles"]["weight"], meta["model"]["params"]["objective"]
    write_meta(path, meta)
    loaded = load_bundle(path).model
    assert loaded.roles.weight is None and loaded.estimator.objective == "independence"
    assert np.array_equal(loaded.estimator.predict_proba(x), model.predict_proba(x))


def test_a_bundle_whose_weight_role_is_a_feature_is_refused(tmp_path, encoded):
    encoder, x, y, s = encoded
    model = SQNNClassifier(**SMALL).fit(x, y, sensitive_features=s)
    path = save_bundle(tmp_path / "m", FittedModel(model, encoder, ROLES), meta={})
    meta = read_meta(path)
    meta["roles"]["weight"] = "signal"
    write_meta(path, meta)
    result = runner.invoke(app, ["evaluate", str(path), str(tmp_path / "any.csv")])
    assert result.exit_code == 2
    assert "roles.weight is also a feature" in result.output


@pytest.fixture(scope="module")
def table_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("methods") / "data.csv"
    synthetic_table(400).to_csv(path, index=False)
    return path


@pytest.mark.parametrize("method", ["adversarial", "vfae"])
def test_the_baselines_run_through_every_command(tmp_path, table_path, method):
    common = ["-t", "y", "-s", "group", "--method", method, *TINY_MODEL]
    trained = runner.invoke(app, ["train", str(table_path), *common, "--objective", "separation", "--out", str(tmp_path / "m")])
    assert trained.exit_code == 0, trained.output
    model = str(tmp_path / "m")
    evaluated = runner.invoke(app, ["evaluate", model, str(table_path), "--json"])
    assert evaluated.exit_code == 0 and 0.0 <= json.loads(evaluated.stdout)["auc"] <= 1.0
    audited = runner.invoke(app, ["audit-representation", model, str(table_path), "--trees", "5", "--n-jobs", "1"])
    assert audited.exit_code == 0, audited.output
    pruned = runner.invoke(app, ["prune", model, str(table_path), "--k", "1", "--out", str(tmp_path / "p")])
    assert pruned.exit_code == 0, pruned.output
    predicted = runner.invoke(app, ["predict", str(tmp_path / "p"), str(table_path), "--out", str(tmp_path / "s.csv")])
    assert predicted.exit_code == 0, predicted.output
    swept = runner.invoke(app, ["sweep-gamma", str(table_path), *common, "--gammas", "0,0.5", "--folds", "2", "--out", str(tmp_path / "sw")])
    assert swept.exit_code == 0, swept.output


def test_an_unknown_objective_is_refused_with_the_choices(table_path, tmp_path):
    result = runner.invoke(app, ["train", str(table_path), "-s", "group", "--objective", "parity", "--out", str(tmp_path / "m")])
    assert result.exit_code == 2
    assert "independence" in result.output and "separation" in result.output


def synthetic_bias(rows: int = 1200, seed: int = 0):
    """y depends on S directly and through a proxy: a plain classifier's DP is large."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, rows)
    x = np.column_stack([rng.normal(size=rows) + 1.5 * s, rng.normal(size=rows), rng.normal(size=rows)]).astype(np.float32)
    y = (x[:, 0] + x[:, 1] + rng.normal(scale=0.5, size=rows) > 0.75).astype(int)
    return x, y, s


@pytest.mark.parametrize("method", METHODS)
def test_every_method_lowers_demographic_parity_against_gamma_0(method):
    x, y, s = synthetic_bias()
    options = dict(method=method, hidden=(16,), code_size=8, epochs=12, batch_size=128, lr=3e-3, device="cpu")

    def parity(gamma: float) -> float:
        model = SQNNClassifier(gamma=gamma, **options).fit(x, y, sensitive_features=s)
        return demographic_parity_difference(y, model.predict(x, threshold=0.5), sensitive_features=s)

    plain, fair = parity(0.0), parity(0.9)
    assert fair < plain - 0.15, (plain, fair)
