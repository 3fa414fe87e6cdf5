"""The sklearn-style classifier: contract, learning, fairness pressure, determinism."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from sqnn_cli import limits
from sqnn_cli.errors import InputError
from sqnn_cli.estimator import SQNNClassifier, TrainingDivergedError, limit_threads
from sqnn_cli.information import bernoulli_mutual_information
from sqnn_cli.training import FlatAdam

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


def blow_up_after_the_first_step(monkeypatch):
    """Make training diverge on any machine: after its first update, every weight is NaN.

    A huge learning rate only diverges where the CPU happens to round it into overflow
    (lr=1e30 left the loss finite, near 5e29, on one machine); poisoned weights take the
    same paths as weights that blew up, through the real detection code."""
    real_step = FlatAdam.step

    def step(self):
        real_step(self)
        self.values.fill_(float("nan"))

    monkeypatch.setattr(FlatAdam, "step", step)


@pytest.mark.parametrize(
    "method, refused_mid_epoch",
    [({"method": "bernoulli"}, False), ({"method": "joint"}, False), ({"method": "joint", "joint_samples": 8}, True)],
    ids=["bernoulli", "joint", "joint-sampled"],
)
def test_diverging_training_is_reported_as_such_by_every_method(problem, monkeypatch, method, refused_mid_epoch):
    # bernoulli and exact joint carry NaN through to the epoch's loss, which fit checks;
    # the sampled joint estimator's torch.bernoulli refuses NaN probabilities mid-epoch,
    # and that too must surface as divergence, not as an internal error.
    x, y, s = problem
    blow_up_after_the_first_step(monkeypatch)
    with pytest.raises(TrainingDivergedError, match="diverged at epoch 1") as caught:
        SQNNClassifier(gamma=0.5, **{**SMALL, "epochs": 2}, **method).fit(x, y, sensitive_features=s)
    assert isinstance(caught.value.__context__, RuntimeError) == refused_mid_epoch


def test_a_runtime_error_of_finite_weights_is_not_called_divergence(problem, monkeypatch):
    x, y, s = problem

    def broken(self, *args, **kwargs):
        raise RuntimeError("a bug, not a divergence")

    monkeypatch.setattr(FlatAdam, "step", broken)
    with pytest.raises(RuntimeError, match="a bug"):
        SQNNClassifier(gamma=0.5, **SMALL).fit(x, y, sensitive_features=s)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"gamma": 1.5}, "gamma"),
        ({"gamma": float("nan")}, "gamma"),
        ({"code_size": 0}, "code_size"),
        ({"code_size": limits.MAX_CODE_SIZE + 1}, "code_size"),
        ({"code_size": 8.0}, "code_size"),
        ({"hidden": (8, -1)}, "hidden"),
        ({"hidden": (limits.MAX_HIDDEN_WIDTH + 1,)}, "hidden"),
        ({"hidden": (8,) * (limits.MAX_HIDDEN_LAYERS + 1)}, "hidden"),
        ({"hidden": "64,64"}, "hidden"),
        ({"method": "joint", "joint_samples": limits.MAX_JOINT_SAMPLES + 1}, "joint_samples"),
        ({"epochs": limits.MAX_EPOCHS + 1}, "epochs"),
        ({"epochs": "30"}, "epochs"),
        ({"batch_size": limits.MAX_BATCH_SIZE + 1}, "batch_size"),
        ({"n_samples": limits.MAX_SAMPLES + 1}, "n_samples"),
        ({"random_state": -1}, "random_state"),
        ({"random_state": limits.MAX_SEED + 1}, "random_state"),
        ({"n_threads": 0}, "n_threads"),
        ({"n_threads": limits.MAX_THREADS + 1}, "n_threads"),
        ({"lr": 0.0}, "lr"),
        ({"temperature": "hot"}, "temperature"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_invalid_parameters_are_refused(problem, params, message):
    x, y, s = problem
    with pytest.raises(InputError, match=message):
        SQNNClassifier(**params).fit(x, y, sensitive_features=s)


def test_every_bound_itself_is_accepted():
    SQNNClassifier(
        hidden=(limits.MAX_HIDDEN_WIDTH,) * limits.MAX_HIDDEN_LAYERS, code_size=limits.MAX_CODE_SIZE,
        epochs=limits.MAX_EPOCHS, batch_size=limits.MAX_BATCH_SIZE, n_samples=limits.MAX_SAMPLES,
        random_state=limits.MAX_SEED, n_threads=limits.MAX_THREADS, device="cpu",
    )._check_params()  # fmt: skip
    SQNNClassifier(method="joint", code_size=20, joint_samples=limits.MAX_JOINT_SAMPLES, device="cpu")._check_params()


def test_a_fitted_state_describing_an_absurd_network_is_refused_before_it_is_built(fitted):
    # The bundle loader relies on this: a crafted meta.json must not allocate gigabytes.
    description, weights = fitted.fitted_state()
    description["params"]["hidden"] = [100_000_000, 64]
    with pytest.raises(InputError, match="hidden"):
        SQNNClassifier.from_fitted_state(description, weights)


@pytest.mark.parametrize(
    "params", [{"hidden": [8] * 100_000}, {"code_size": 10**5000}, {"method": "x" * 10_000}], ids=["deep", "long-int", "long-str"]
)
def test_a_refusal_of_a_huge_value_stays_one_short_line(params):
    with pytest.raises(InputError) as caught:
        SQNNClassifier(**params)._check_params()
    assert len(str(caught.value)) < 200 and "\n" not in str(caught.value)


def test_scikit_learns_parameter_validation_is_not_shadowed():
    assert "_validate_params" not in vars(SQNNClassifier)


# -- threads ---------------------------------------------------------------------------
def threads_seen_by_each_epoch(model, problem) -> list[int]:
    x, y, s = problem
    seen: list[int] = []
    model.fit(x, y, sensitive_features=s, epoch_callback=lambda record: seen.append(torch.get_num_threads()))
    return seen


@pytest.mark.parametrize("n_threads, expected", [(None, 1), (1, 1), (2, 2)])
def test_fit_runs_on_its_threads_and_gives_back_the_previous_count(problem, n_threads, expected):
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        model = SQNNClassifier(n_threads=n_threads, **{**SMALL, "epochs": 2})
        assert threads_seen_by_each_epoch(model, problem) == [expected, expected]
        assert torch.get_num_threads() == 3
        model.predict_proba(problem[0][:10])
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_the_blas_pools_get_their_counts_back():
    from threadpoolctl import threadpool_info

    before = [pool["num_threads"] for pool in threadpool_info()]
    with limit_threads(1):
        assert all(pool["num_threads"] == 1 for pool in threadpool_info())
    assert [pool["num_threads"] for pool in threadpool_info()] == before


def test_a_block_without_a_count_keeps_the_enclosing_one():
    before = torch.get_num_threads()
    with limit_threads(2):
        with limit_threads(None) as inner:
            assert inner == 2 and torch.get_num_threads() == 2
        with limit_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    assert torch.get_num_threads() == before


def test_results_are_bit_identical_at_equal_thread_counts_and_as_good_across_them(problem):
    # The README's promise: bit-identical at equal thread counts only. Across counts the
    # floating-point sums are split differently, and a last-bit difference in a firing
    # probability can flip a sampled bit, so only the quality of the model is promised.
    x, y, s = problem
    fits = {
        label: SQNNClassifier(gamma=0.3, random_state=11, n_threads=n, **{**SMALL, "epochs": 3}).fit(x, y, sensitive_features=s)
        for label, n in (("two", 2), ("two again", 2), ("one", 1))
    }
    two, again = fits["two"].network_.state_dict(), fits["two again"].network_.state_dict()
    for name in two:
        assert torch.equal(two[name], again[name]), name
    assert np.array_equal(fits["two"].predict_proba(x), fits["two again"].predict_proba(x))
    auc = {label: roc_auc_score(y, model.predict_proba(x)[:, 1]) for label, model in fits.items()}
    assert abs(auc["two"] - auc["one"]) < 0.02, auc
