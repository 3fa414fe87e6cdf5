"""The joint method: a trainable I(T;S) of the whole binary layer (issue 4)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from sqnn_cli.errors import InputError
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.information import (
    bernoulli_mutual_information,
    joint_information,
    joint_mutual_information,
    sampled_joint_mutual_information,
)


@pytest.mark.parametrize("m", [1, 3, 6])
@pytest.mark.parametrize("n_groups", [2, 3])
def test_sampled_estimate_agrees_with_enumeration_within_its_error(m, n_groups):
    rng = np.random.default_rng(m * 10 + n_groups)
    theta = torch.from_numpy(rng.uniform(0.05, 0.95, size=(60, m)))
    groups = torch.from_numpy(rng.integers(0, n_groups, size=60))
    exact = joint_mutual_information(theta, groups, n_groups).item()
    generator = torch.Generator().manual_seed(0)
    draws = torch.stack(
        [sampled_joint_mutual_information(theta, groups, n_groups, samples=64, generator=generator)[0] for _ in range(200)]
    )
    stderr = draws.std().item() / np.sqrt(len(draws))
    assert abs(draws.mean().item() - exact) < 4 * stderr + 1e-9


def test_sampled_gradient_is_unbiased():
    """The mean of many surrogate gradients approaches the exact gradient."""
    rng = np.random.default_rng(7)
    theta = torch.tensor(rng.uniform(0.1, 0.9, size=(20, 3)), requires_grad=True)
    groups = torch.from_numpy(rng.integers(0, 2, size=20))
    joint_mutual_information(theta, groups, 2).backward()
    exact = theta.grad.clone()
    generator = torch.Generator().manual_seed(1)
    gradients = []
    for _ in range(400):
        theta.grad = None
        sampled_joint_mutual_information(theta, groups, 2, samples=32, generator=generator)[1].backward()
        gradients.append(theta.grad.clone())
    stacked = torch.stack(gradients)
    mean, stderr = stacked.mean(0), stacked.std(0) / np.sqrt(len(stacked))
    assert ((mean - exact).abs() <= 4 * stderr + 1e-6).all()


def test_xor_is_invisible_to_the_bernoulli_loss_but_not_to_the_joint_loss():
    x = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]] * 25, dtype=torch.float64)
    theta = x * 0.998 + 0.001
    s = (x[:, 0] != x[:, 1]).long()
    assert bernoulli_mutual_information(theta, s, 2).item() < 1e-6
    assert joint_mutual_information(theta, s, 2).item() > 0.95


def test_joint_loss_handles_an_absent_group():
    theta = torch.rand(10, 4, dtype=torch.float64)
    value = joint_mutual_information(theta, torch.tensor([0] * 5 + [2] * 5), 3)
    assert torch.isfinite(value)
    assert value.item() == pytest.approx(joint_mutual_information(theta, torch.tensor([0] * 5 + [1] * 5), 2).item())


def test_too_wide_a_layer_for_enumeration_is_refused_with_the_way_out():
    x = np.zeros((4, 2), np.float32)
    with pytest.raises(InputError, match="joint_samples"):
        SQNNClassifier(method="joint", code_size=32).fit(x, [0, 1, 0, 1], sensitive_features=[0, 0, 1, 1])
    SQNNClassifier(method="joint", code_size=16, joint_samples=16, epochs=1, hidden=(2,)).fit(
        x, np.array([0, 1, 0, 1]), sensitive_features=[0, 0, 1, 1]
    )


def xor_problem(n: int = 2000, seed: int = 0):
    """Four fair bits x; S = x0 xor x1 is recoverable from pairs of neurons only; y = x0 or x2."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, 4))
    s = x[:, 0] ^ x[:, 1]
    y = x[:, 0] | x[:, 2]
    return x.astype(np.float32), y, s


def trained_from_encoding_layer(method: str, x, y, s, **kwargs) -> tuple[SQNNClassifier, float]:
    """A model whose binary layer starts as a copy of x, then trained with gamma = 0.7."""
    model = SQNNClassifier(method=method, hidden=(), code_size=4, gamma=0.7, epochs=1, batch_size=128, lr=0.02,
                           device="cpu", warm_start=True, random_state=0, **kwargs)  # fmt: skip
    model.set_params(gamma=0.0).fit(x, y, sensitive_features=s)
    with torch.no_grad():
        model.network_.binary.linear.weight.copy_(12.0 * torch.eye(4))
        model.network_.binary.linear.bias.fill_(-6.0)
    start = joint_information(model.firing_probabilities(x), s).bits
    model.set_params(gamma=0.7, epochs=25).fit(x, y, sensitive_features=s)
    return model, start


@pytest.fixture(scope="module")
def xor_runs():
    x, y, s = xor_problem()
    joint, start = trained_from_encoding_layer("joint", x, y, s)
    bernoulli, start_b = trained_from_encoding_layer("bernoulli", x, y, s)
    sampled, _ = trained_from_encoding_layer("joint", x, y, s, joint_samples=64)
    assert start == pytest.approx(start_b)
    return x, y, s, start, joint, bernoulli, sampled


def test_joint_training_removes_information_the_bernoulli_loss_cannot_see(xor_runs):
    x, y, s, start, joint, bernoulli, _ = xor_runs
    after_joint = joint_information(joint.firing_probabilities(x), s).bits
    after_bernoulli = joint_information(bernoulli.firing_probabilities(x), s).bits
    assert start > 0.9
    assert after_joint < 0.1 * start
    assert after_joint < after_bernoulli / 3  # measured: 0.05 against 0.30 bits
    assert roc_auc_score(y, joint.predict_proba(x)[:, 1]) > 0.9


def test_sampled_joint_training_also_removes_it(xor_runs):
    x, y, s, start, _, _, sampled = xor_runs
    assert joint_information(sampled.firing_probabilities(x), s).bits < 0.1 * start
    assert roc_auc_score(y, sampled.predict_proba(x)[:, 1]) > 0.9
