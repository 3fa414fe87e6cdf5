"""Sample weights and the separation objective in training: the information terms with
weights are those of repeated rows, and fit honours the weights' meaning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.information import (
    bernoulli_information_and_gradient,
    bernoulli_mutual_information,
    conditional_on_labels,
    information_cells,
    joint_mutual_information,
    sampled_joint_mutual_information,
)


def table(seed: int, rows: int, neurons: int = 3, n_groups: int = 3):
    rng = np.random.default_rng(seed)
    theta = torch.from_numpy(rng.uniform(0.02, 0.98, size=(rows, neurons)))
    groups = torch.from_numpy(rng.integers(0, n_groups, rows))
    labels = torch.from_numpy(rng.integers(0, 2, rows))
    counts = torch.from_numpy(rng.integers(1, 4, rows))
    return theta, groups, labels, counts


def repeated(counts: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return [tensor.repeat_interleave(counts, dim=0) for tensor in tensors]


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 30), objective=st.sampled_from(["independence", "separation"]))
def test_integer_weights_give_the_bernoulli_loss_and_gradient_of_repeated_rows(seed, rows, objective):
    theta, groups, labels, counts = table(seed, rows)
    cells = information_cells(3, objective, dtype=torch.float64)
    weighted, weighted_gradient = bernoulli_information_and_gradient(
        theta, cells.membership(groups, labels), signs=cells.signs, row_weights=counts.double()
    )
    theta_r, groups_r, labels_r = repeated(counts, theta, groups, labels)
    plain, plain_gradient = bernoulli_information_and_gradient(theta_r, cells.membership(groups_r, labels_r), signs=cells.signs)
    assert weighted.item() == pytest.approx(plain.item(), abs=1e-12)
    # A row of weight k stands for k rows, so its gradient is the sum of theirs.
    owner = torch.arange(rows).repeat_interleave(counts)
    summed = torch.zeros_like(weighted_gradient).index_add(0, owner, plain_gradient)
    assert torch.allclose(weighted_gradient, summed, rtol=1e-9, atol=1e-14)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 20))
def test_the_separation_cells_give_sum_over_labels_of_the_conditional_information(seed, rows):
    theta, groups, labels, counts = table(seed, rows)
    cells = information_cells(3, "separation", dtype=torch.float64)
    weights = counts.double()
    closed, _ = bernoulli_information_and_gradient(theta, cells.membership(groups, labels), signs=cells.signs, row_weights=weights)

    def independence(theta, groups, weights):
        information = bernoulli_mutual_information(theta, groups, 3, row_weights=weights)
        return (information,)

    (reference,) = conditional_on_labels(independence, theta, groups, labels, weights)
    assert closed.item() == pytest.approx(reference.item(), abs=1e-12)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 10_000), rows=st.integers(2, 16))
def test_integer_weights_give_the_joint_information_of_repeated_rows(seed, rows):
    theta, groups, _, counts = table(seed, rows)
    weighted = joint_mutual_information(theta, groups, 3, row_weights=counts.double())
    theta_r, groups_r = repeated(counts, theta, groups)
    assert weighted.item() == pytest.approx(joint_mutual_information(theta_r, groups_r, 3).item(), abs=1e-12)


def test_the_sampled_joint_estimate_with_weights_centres_on_the_exact_value():
    theta, groups, _, counts = table(4, 12)
    exact = joint_mutual_information(theta, groups, 3, row_weights=counts.double()).item()
    generator = torch.Generator().manual_seed(0)
    estimates = [
        sampled_joint_mutual_information(theta, groups, 3, samples=64, generator=generator, row_weights=counts.double())[0]
        for _ in range(300)
    ]
    values = torch.stack(estimates)
    assert abs(values.mean().item() - exact) < 4 * values.std().item() / np.sqrt(len(values))


def synthetic(rows: int = 600, seed: int = 0):
    rng = np.random.default_rng(seed)
    s = rng.integers(0, 2, rows)
    x = np.column_stack([rng.normal(size=rows) + s, rng.normal(size=rows), rng.normal(size=rows)]).astype(np.float32)
    y = (x[:, 0] + x[:, 1] + rng.normal(scale=0.5, size=rows) > 0.5).astype(int)
    return x, y, s


SMALL = dict(hidden=(8,), code_size=4, epochs=4, batch_size=64, device="cpu")


@pytest.mark.parametrize("method", ["bernoulli", "joint"])
def test_equal_weights_train_exactly_what_no_weights_train(method):
    x, y, s = synthetic()
    plain = SQNNClassifier(gamma=0.5, method=method, **SMALL).fit(x, y, sensitive_features=s)
    weighted = SQNNClassifier(gamma=0.5, method=method, **SMALL).fit(x, y, sensitive_features=s, sample_weight=np.full(len(y), 2.5))
    assert np.array_equal(plain.predict_proba(x), weighted.predict_proba(x))
    assert plain.threshold_ == weighted.threshold_


def test_rows_of_weight_zero_are_left_out_of_training():
    x, y, s = synthetic()
    keep = np.arange(len(y)) % 3 != 0
    weights = np.where(keep, 1.0, 0.0)
    dropped = SQNNClassifier(gamma=0.5, **SMALL).fit(x[keep], y[keep], sensitive_features=s[keep])
    zeroed = SQNNClassifier(gamma=0.5, **SMALL).fit(x, y, sensitive_features=s, sample_weight=weights)
    assert np.array_equal(dropped.predict_proba(x), zeroed.predict_proba(x))


def test_weights_change_what_is_learned():
    x, y, s = synthetic()
    weights = np.where(s == 1, 5.0, 1.0)
    plain = SQNNClassifier(gamma=0.0, **SMALL).fit(x, y, sensitive_features=s)
    weighted = SQNNClassifier(gamma=0.0, **SMALL).fit(x, y, sensitive_features=s, sample_weight=weights)
    assert not np.array_equal(plain.predict_proba(x), weighted.predict_proba(x))
    assert plain.history_[-1]["bce"] != weighted.history_[-1]["bce"]


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        (np.full(600, -1.0), "Negative values in data passed to `sample_weight`"),
        (np.full(600, np.nan), "NaN"),
        (np.zeros(600), "at least one non-zero"),
        (np.ones(599), "sample_weight.shape"),
    ],
)
def test_bad_weights_are_refused_naming_sample_weight(weights, message):
    x, y, s = synthetic()
    with pytest.raises(ValueError, match=message):
        SQNNClassifier(**SMALL).fit(x, y, sensitive_features=s, sample_weight=weights)


def test_a_class_with_no_weight_is_refused():
    x, y, s = synthetic()
    with pytest.raises(ValueError, match="two classes of positive weight"):
        SQNNClassifier(**SMALL).fit(x, y, sensitive_features=s, sample_weight=(y == 1).astype(float))


def conditional_information(model: SQNNClassifier, x, y, s) -> float:
    theta = torch.from_numpy(model.firing_probabilities(x)).double()

    def independence(theta, groups, weights):
        return (bernoulli_mutual_information(theta, groups, 2),)

    (value,) = conditional_on_labels(independence, theta, torch.from_numpy(s), torch.from_numpy(y))
    return value.item()


def test_the_separation_objective_lowers_the_information_about_s_given_y():
    x, y, s = synthetic(rows=1000)
    options = dict(hidden=(16,), code_size=8, epochs=15, batch_size=128, device="cpu")
    plain = SQNNClassifier(gamma=0.0, **options).fit(x, y, sensitive_features=s)
    separated = SQNNClassifier(gamma=0.8, objective="separation", **options).fit(x, y, sensitive_features=s)
    assert conditional_information(separated, x, y, s) < 0.5 * conditional_information(plain, x, y, s)
