"""The bernoulli MI term against hand-computed values and a brute-force joint table."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sqnn_cli.information import (
    bernoulli_information_and_gradient,
    bernoulli_mutual_information,
    binary_entropy,
    group_indicators,
)


def brute_force_mi(theta: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """I(T_i;S) per neuron from the full joint table p(t_i, s) of the row mixture."""
    n, m = theta.shape
    result = np.zeros(m)
    labels = np.unique(groups)
    for i in range(m):
        joint = np.zeros((2, len(labels)))
        for k, label in enumerate(labels):
            rows = groups == label
            joint[1, k] = theta[rows, i].sum() / n
            joint[0, k] = (1 - theta[rows, i]).sum() / n
        p_t = joint.sum(axis=1, keepdims=True)
        p_s = joint.sum(axis=0, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(joint > 0, joint * np.log2(joint / (p_t * p_s)), 0.0)
        result[i] = terms.sum()
    return result


def mi(theta, groups, n_groups, per_neuron=False):
    return bernoulli_mutual_information(
        torch.as_tensor(theta, dtype=torch.float64), torch.as_tensor(groups), n_groups, per_neuron=per_neuron
    )


def test_binary_entropy_known_values():
    values = binary_entropy(torch.tensor([0.5, 0.0, 1.0, 0.25], dtype=torch.float64))
    expected = [1.0, 0.0, 0.0, -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))]
    assert values.tolist() == pytest.approx(expected, abs=1e-5)


def test_neuron_that_copies_a_balanced_binary_s_carries_one_bit():
    groups = np.array([0, 0, 1, 1])
    theta = np.array([[0.0], [0.0], [1.0], [1.0]])
    assert mi(theta, groups, 2).item() == pytest.approx(1.0, abs=1e-4)


def test_neuron_independent_of_s_carries_nothing():
    groups = np.array([0, 1, 2, 0, 1, 2])
    theta = np.full((6, 3), 0.3)
    assert mi(theta, groups, 3).item() == pytest.approx(0.0, abs=1e-9)


def test_three_groups_hand_computed():
    # Group means 0.2, 0.5, 0.8 with p(s) = 1/4, 1/4, 1/2: the marginal mean is 0.575.
    groups = np.array([0, 1, 2, 2])
    theta = np.array([[0.2], [0.5], [0.8], [0.8]])
    h = lambda p: -(p * math.log2(p) + (1 - p) * math.log2(1 - p))  # noqa: E731
    expected = h(0.575) - (0.25 * h(0.2) + 0.25 * h(0.5) + 0.5 * h(0.8))
    assert mi(theta, groups, 3).item() == pytest.approx(expected, abs=1e-6)


def test_group_absent_from_batch_drops_out_without_nan():
    groups = np.array([0, 0, 2, 2])
    theta = np.array([[0.1, 0.9], [0.2, 0.7], [0.8, 0.4], [0.6, 0.5]])
    with_absent = mi(theta, groups, 3)
    relabelled = mi(theta, np.array([0, 0, 1, 1]), 2)
    assert torch.isfinite(with_absent)
    assert with_absent.item() == pytest.approx(relabelled.item(), abs=1e-12)


def test_gradient_is_finite_at_saturated_probabilities():
    theta = torch.tensor([[0.0, 1.0], [1.0, 1.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    bernoulli_mutual_information(theta, torch.tensor([0, 1, 1]), 2).backward()
    assert torch.isfinite(theta.grad).all()


@st.composite
def theta_and_groups(draw, min_rows: int, margin: float):
    """(theta, groups, n_groups): firing probabilities in [margin, 1 - margin] of 1-4
    neurons over min_rows-12 rows, and one of 2-4 groups per row (not every group need
    occur)."""
    theta = draw(
        arrays(np.float64, st.tuples(st.integers(min_rows, 12), st.integers(1, 4)), elements=st.floats(margin, 1 - margin))
    )
    n_groups = draw(st.integers(2, 4))
    groups = np.array(draw(st.lists(st.integers(0, n_groups - 1), min_size=len(theta), max_size=len(theta))))
    return theta, groups, n_groups


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=theta_and_groups(min_rows=2, margin=0.01))
def test_matches_brute_force_joint_table(case):
    theta, groups, n_groups = case
    fast = mi(theta, groups, n_groups, per_neuron=True).numpy()
    assert fast == pytest.approx(brute_force_mi(theta, groups), abs=1e-6)
    # Information is non-negative and no neuron can know more than one bit or H(S).
    assert (fast >= -1e-9).all()
    p_s = np.bincount(groups) / len(groups)
    h_s = -(p_s[p_s > 0] * np.log2(p_s[p_s > 0])).sum()
    assert (fast <= min(1.0, h_s) + 1e-6).all()


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(case=theta_and_groups(min_rows=1, margin=0.001), weight=st.floats(0.1, 1.0))
def test_closed_form_gradient_is_autograds(case, weight):
    # Not every group need occur in the batch: an absent group must drop out of both.
    theta, groups, n_groups = case
    groups = torch.from_numpy(groups)
    tracked = torch.tensor(theta, requires_grad=True)
    expected = bernoulli_mutual_information(tracked, groups, n_groups)
    expected.backward()
    membership = group_indicators(n_groups, dtype=torch.float64)[groups]
    information, gradient = bernoulli_information_and_gradient(torch.tensor(theta), membership, weight=weight)
    assert information.item() == pytest.approx(expected.item(), abs=1e-12)
    assert torch.allclose(gradient, weight * tracked.grad, rtol=1e-9, atol=1e-12)


def test_closed_form_keeps_the_slope_at_a_clamped_group_mean():
    # Group 1's neuron is stuck at 1: autograd's clamp gives its rows no gradient with
    # respect to theta, the closed form the slope at the clamp (see its docstring).
    theta = torch.tensor([[0.2], [0.4], [1.0], [1.0]], dtype=torch.float64)
    groups = torch.tensor([0, 0, 1, 1])
    membership = group_indicators(2, dtype=theta.dtype)[groups]
    information, gradient = bernoulli_information_and_gradient(theta, membership)
    assert information.item() > 0.3
    assert (gradient[2:] > 0).all() and (gradient[:2] < 0).all()
