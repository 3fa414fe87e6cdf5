"""The sklearn-style classifier: contract, learning, fairness pressure, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from sqnn_cli.errors import InputError
from sqnn_cli.estimator import SQNNClassifier, TrainingDivergedError
from sqnn_cli.information import bernoulli_mutual_information

SMALL = dict(hidden=(16,), code_size=8, epochs=15, batch_size=64, n_samples=8, device="cpu")


def leaky_problem(n: int = 1500, seed: int = 0):
    """y depends on x0; S is written plainly into x1, which also predicts y a little."""
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, size=n)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    x[:, 1] += 2.0 * s
    y = (x[:, 0] + 0.5 * x[:, 1] + rng.normal(scale=0.5, size=n) > 0.5).astype(int)
    return x, y, s


@pytest.fixture(scope="module")
def problem():
    return leaky_problem()


@pytest.fixture(scope="module")
def fitted(problem):
    x, y, s = problem
    return SQNNClassifier(gamma=0.0, random_state=3, **SMALL).fit(x, y, sensitive_features=s)


def test_get_params_and_clone_follow_sklearn():
    model = SQNNClassifier(gamma=0.4, code_size=5)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    assert not hasattr(copy, "network_")


def test_learns_the_task(fitted, problem):
    x, y, _ = problem
    proba = fitted.predict_proba(x)
    assert proba.shape == (len(x), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert roc_auc_score(y, proba[:, 1]) > 0.85
    assert set(np.unique(fitted.predict(x))) <= {0, 1}


def test_transform_returns_binary_codes(fitted, problem):
    x, _, _ = problem
    codes = fitted.transform(x)
    assert codes.shape == (len(x), 8) and codes.dtype == np.uint8
    assert set(np.unique(codes)) <= {0, 1}
    theta = fitted.firing_probabilities(x)
    assert ((theta >= 0) & (theta <= 1)).all()


def test_history_records_each_epoch(fitted):
    assert [r["epoch"] for r in fitted.history_] == list(range(1, 16))
    assert {"loss", "bce", "mi", "seconds"} <= set(fitted.history_[0])


def test_high_gamma_removes_information_about_s(problem, fitted):
    x, y, s = problem
    fair = SQNNClassifier(gamma=0.9, random_state=3, **SMALL).fit(x, y, sensitive_features=s)

    def information(model):
        theta = torch.from_numpy(model.firing_probabilities(x)).double()
        return bernoulli_mutual_information(theta, torch.from_numpy(s), 2).item()

    assert information(fair) < 0.25 * information(fitted)


def test_same_seed_gives_bit_identical_weights_and_scores(problem):
    x, y, s = problem
    first = SQNNClassifier(gamma=0.3, random_state=11, **SMALL).fit(x, y, sensitive_features=s)
    second = SQNNClassifier(gamma=0.3, random_state=11, **SMALL).fit(x, y, sensitive_features=s)
    for (name, a), (_, b) in zip(first.network_.state_dict().items(), second.network_.state_dict().items()):
        assert torch.equal(a, b), name
    assert np.array_equal(first.predict_proba(x), second.predict_proba(x))
    assert np.array_equal(first.transform(x), second.transform(x))
    other = SQNNClassifier(gamma=0.3, random_state=12, **SMALL).fit(x, y, sensitive_features=s)
    assert not np.array_equal(first.predict_proba(x), other.predict_proba(x))


def test_fit_does_not_disturb_the_global_generator(problem):
    x, y, s = problem
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    SQNNClassifier(epochs=1, hidden=(4,), code_size=2, device="cpu").fit(x, y, sensitive_features=s)
    assert torch.equal(torch.rand(3), expected)


def test_more_groups_than_two_train_without_nan():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3)).astype(np.float32)
    y = (x[:, 0] > 0).astype(int)
    s = rng.choice(["p", "q", "r", "t"], size=300)
    model = SQNNClassifier(gamma=0.5, **{**SMALL, "epochs": 3, "batch_size": 7}).fit(x, y, sensitive_features=s)
    assert all(np.isfinite(r["mi"]) for r in model.history_)


@pytest.mark.parametrize(
    "method", [{"method": "bernoulli"}, {"method": "joint"}, {"method": "joint", "joint_samples": 8}]
)
def test_diverging_training_is_reported_as_such_by_every_method(problem, method):
    # The sampled joint estimator's torch.bernoulli refuses NaN probabilities mid-epoch;
    # that too must surface as divergence, not as an internal error.
    x, y, s = problem
    with pytest.raises(TrainingDivergedError, match="diverged"):
        SQNNClassifier(gamma=0.5, lr=1e30, **{**SMALL, "epochs": 2}, **method).fit(x, y, sensitive_features=s)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"gamma": 1.5}, "gamma"),
        ({"code_size": 0}, "code_size"),
        ({"hidden": (8, -1)}, "hidden"),
        ({"lr": 0.0}, "lr"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_invalid_parameters_are_refused(problem, params, message):
    x, y, s = problem
    with pytest.raises(InputError, match=message):
        SQNNClassifier(**params).fit(x, y, sensitive_features=s)


def test_wrong_feature_count_at_prediction(fitted):
    with pytest.raises(ValueError, match="features"):
        fitted.predict_proba(np.zeros((2, 7), dtype=np.float32))
