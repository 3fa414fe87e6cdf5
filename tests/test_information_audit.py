"""Whole-dataset information of the binary layer (DESIGN §3-4): exact enumeration against
a brute-force loop over codes, Monte-Carlo against exact, the xor counterexample, the
plug-in estimate and the differentiable joint loss."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sqnn_cli.errors import ParameterError
from sqnn_cli.information import (
    DEFAULT_MAX_TERMS,
    InformationEstimate,
    bernoulli_mutual_information,
    conditional_flow_estimate,
    conditional_flows,
    distinct_codes,
    joint_information,
    joint_mutual_information,
    neuron_entropies,
    neuron_information,
    plugin_information,
)

EXACT = "exact-enumeration"
MONTE_CARLO = "monte-carlo"
FAST = settings(max_examples=40, deadline=None, derandomize=True, database=None)


def brute_force_joint(theta: np.ndarray, labels: np.ndarray) -> float:
    """I(T;L) in bits by an explicit loop over every code of the row mixture."""
    theta = np.clip(theta, 1e-7, 1 - 1e-7)
    n, m = theta.shape
    values = np.unique(labels)
    total = 0.0
    for code in itertools.product([0, 1], repeat=m):
        likelihood = np.prod(np.where(np.array(code) == 1, theta, 1 - theta), axis=1)
        p_t = likelihood.mean()
        for value in values:
            rows = labels == value
            p_t_given_l = likelihood[rows].mean()
            total += rows.mean() * p_t_given_l * math.log2(p_t_given_l / p_t)
    return total


def entropy_bits(labels: np.ndarray) -> float:
    p = np.unique(labels, return_counts=True)[1] / len(labels)
    return float(-(p * np.log2(p)).sum())


def xor_layer(copies: int = 50, noise: float = 0.001) -> tuple[np.ndarray, np.ndarray]:
    """Two near-deterministic neurons copying fair independent bits x1, x2, and S = x1 xor x2."""
    bits = np.array(list(itertools.product([0, 1], repeat=2)) * copies)
    theta = np.where(bits == 1, 1 - noise, noise)
    return theta, bits[:, 0] ^ bits[:, 1]


def small_case(seed: int, n: int = 40, m: int = 4, n_labels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    theta = 1 / (1 + np.exp(-2 * rng.normal(size=(n, m))))
    labels = rng.integers(0, n_labels, n)
    # Make the labels depend on theta so that the information is not trivially small.
    labels = np.where(theta[:, 0] > 0.7, n_labels - 1, labels)
    return theta, labels


@st.composite
def theta_and_labels(draw):
    """(theta, labels, n_labels): firing probabilities of up to 5 neurons over 2-10 rows,
    and one of 2-3 labels per row (not every label need occur)."""
    m = draw(st.integers(1, 5))
    theta = draw(arrays(np.float64, st.tuples(st.integers(2, 10), st.just(m)), elements=st.floats(0.001, 0.999)))
    n_labels = draw(st.integers(2, 3))
    labels = np.array(draw(st.lists(st.integers(0, n_labels - 1), min_size=len(theta), max_size=len(theta))))
    return theta, labels, n_labels


# -- the xor counterexample ---------------------------------------------------------------


def test_xor_each_neuron_alone_says_nothing_both_together_say_one_bit():
    theta, s = xor_layer()
    per_neuron = neuron_information(theta, s)
    flows, joint = conditional_flows(theta, s)
    assert (per_neuron < 0.01).all()
    assert joint.estimator == EXACT and joint.stderr is None
    # 1 bit less the entropy of the xor of two 0.001-noisy bits.
    assert joint.bits > 0.95
    assert joint.bits == pytest.approx(1 - entropy_bits(np.array([0] * 998 + [1] * 2)), abs=1e-3)
    assert flows == pytest.approx([joint.bits, joint.bits], abs=1e-9)
    # The training loss's per-neuron sum is no upper bound on the joint information.
    assert per_neuron.sum() < joint.bits - 0.9


def test_xor_monte_carlo_sees_the_synergy_too():
    theta, s = xor_layer()
    estimate = conditional_flow_estimate(theta, s, max_terms=0, samples=2000)
    assert estimate.joint.estimator == MONTE_CARLO and estimate.joint.samples == 2000
    assert estimate.joint.bits > 0.95
    assert (estimate.flows > 0.95).all()


# -- exact enumeration ----------------------------------------------------------------------


@FAST
@given(case=theta_and_labels())
def test_exact_matches_brute_force_loop_over_codes(case):
    theta, labels, n_labels = case
    flows, joint = conditional_flows(theta, labels)
    expected = brute_force_joint(theta, labels)
    assert joint.estimator == EXACT
    assert joint.bits == pytest.approx(expected, abs=1e-9)
    assert joint_information(theta, labels).bits == pytest.approx(expected, abs=1e-9)
    m = theta.shape[1]
    leave_one_out = [brute_force_joint(np.delete(theta, i, axis=1), labels) if m > 1 else 0.0 for i in range(m)]
    assert flows == pytest.approx(expected - np.array(leave_one_out), abs=1e-9)


@FAST
@given(case=theta_and_labels())
def test_information_bounds(case):
    theta, labels, n_labels = case
    flows, joint = conditional_flows(theta, labels)
    per_neuron = neuron_information(theta, labels)
    assert -1e-9 <= joint.bits <= entropy_bits(labels) + 1e-9
    # The layer knows at least what any one neuron knows, and conditional MI is >= 0.
    assert joint.bits >= per_neuron.max() - 1e-6
    assert (flows >= -1e-9).all()
    entropies = neuron_entropies(theta)
    assert ((entropies >= -1e-12) & (entropies <= 1 + 1e-12)).all()


def test_code_that_copies_s_carries_its_entropy():
    s = np.repeat([0, 1, 2], [10, 20, 30])
    theta = np.column_stack([s == 1, s == 2]).astype(float)  # a binary encoding of S
    assert joint_information(theta, s).bits == pytest.approx(entropy_bits(s), abs=1e-5)
    # Each sampled code reveals its row's label, so the estimate is the mean of
    # -log2 p(l) over the visited rows: exact once every row is visited equally often.
    estimate = joint_information(theta, s, max_terms=0, samples=600)
    assert estimate.bits == pytest.approx(entropy_bits(s), abs=1e-5)


def test_code_independent_of_s_carries_nothing():
    rng = np.random.default_rng(3)
    rows = rng.random((25, 6))
    # Every group sees the same rows, so p(t | s) = p(t) for every code.
    theta = np.vstack([rows, rows, rows])
    s = np.repeat(["a", "b", "c"], 25)
    assert joint_information(theta, s).bits == pytest.approx(0.0, abs=1e-12)
    flows, joint = conditional_flows(theta, s, max_terms=0, samples=1000)
    assert joint.bits == pytest.approx(0.0, abs=1e-12)
    assert flows == pytest.approx(np.zeros(6), abs=1e-12)


def test_single_label_or_no_neurons_carry_nothing():
    theta = np.random.default_rng(0).random((10, 3))
    assert joint_information(theta, np.zeros(10)).bits == 0.0
    flows, joint = conditional_flows(np.zeros((10, 0)), np.arange(10) % 2)
    assert joint.bits == 0.0 and flows.shape == (0,)


def test_any_hashable_labels():
    theta, labels = small_case(0)
    words = np.array(["no", "yes"])[labels]
    assert joint_information(theta, words).bits == joint_information(theta, labels).bits
    assert (neuron_information(theta, words) == neuron_information(theta, labels)).all()


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError):
        joint_information(np.array([[0.5], [np.nan]]), [0, 1])
    with pytest.raises(ValueError):
        joint_information(np.array([[0.5], [1.5]]), [0, 1])
    with pytest.raises(ValueError):
        joint_information(np.full((3, 2), 0.5), [0, 1])


# -- Monte Carlo ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(8))
def test_monte_carlo_agrees_with_exact(seed):
    theta, labels = small_case(seed, m=1 + seed % 5, n_labels=2 + seed % 2)
    exact = conditional_flow_estimate(theta, labels)
    sampled = conditional_flow_estimate(theta, labels, max_terms=0, samples=3000, seed=seed)
    assert exact.joint.estimator == EXACT and sampled.joint.estimator == MONTE_CARLO
    assert abs(sampled.joint.bits - exact.joint.bits) <= 4 * sampled.joint.stderr + 1e-9
    assert (np.abs(sampled.flows - exact.flows) <= 4 * sampled.stderr + 1e-9).all()


def test_monte_carlo_is_seeded_and_shares_its_draws_with_the_flows():
    theta, labels = small_case(1, m=6)
    first = joint_information(theta, labels, max_terms=0, samples=500, seed=7)
    assert first == joint_information(theta, labels, max_terms=0, samples=500, seed=7)
    assert first != joint_information(theta, labels, max_terms=0, samples=500, seed=8)
    _, joint = conditional_flows(theta, labels, max_terms=0, samples=500, seed=7)
    assert joint == first


def test_flows_have_smaller_errors_than_the_joint():
    # Common random numbers: a flow is a difference of strongly correlated terms.
    theta, labels = small_case(2, n=200, m=8)
    estimate = conditional_flow_estimate(theta, labels, max_terms=0, samples=2000)
    assert (estimate.stderr < estimate.joint.stderr).all()


def test_estimate_serialises():
    estimate = InformationEstimate(0.25, MONTE_CARLO, 0.01, 100)
    assert estimate.to_dict() == {"bits": 0.25, "estimator": MONTE_CARLO, "stderr": 0.01, "samples": 100}


# -- per-neuron measures ----------------------------------------------------------------------


def test_neuron_information_is_the_training_loss_per_neuron():
    theta, labels = small_case(4, n=60, m=5, n_labels=3)
    expected = bernoulli_mutual_information(
        torch.from_numpy(theta), torch.from_numpy(labels.astype(np.int64)), 3, per_neuron=True
    ).numpy()
    assert neuron_information(theta, labels) == pytest.approx(expected, abs=1e-12)


def test_neuron_entropies():
    theta = np.array([[0.0, 0.2, 1.0], [1.0, 0.2, 1.0]])
    assert neuron_entropies(theta) == pytest.approx([1.0, entropy_bits(np.array([0] * 4 + [1])), 0.0], abs=1e-5)


# -- plug-in ------------------------------------------------------------------------------------


def plugin_bits(codes: np.ndarray, labels: np.ndarray) -> float:
    """Uncorrected plug-in I(T;L) from counted (code, label) pairs."""
    n = len(labels)
    joint = Counter(zip(map(bytes, codes), labels))
    code_counts = Counter(map(bytes, codes))
    label_counts = Counter(labels)
    return sum(c / n * math.log2(c * n / (code_counts[t] * label_counts[s])) for (t, s), c in joint.items())


def test_plugin_of_a_code_copying_s_is_one_bit():
    s = np.arange(1000) % 2
    codes = np.column_stack([s, s, 1 - s]).astype(np.uint8)
    estimate = plugin_information(codes, s)
    assert estimate.estimator == "plug-in (Miller-Madow)" and estimate.samples == 1000
    assert estimate.bits == pytest.approx(1.0, abs=0.01)


def test_miller_madow_removes_the_plugin_bias_of_independent_codes():
    rng = np.random.default_rng(0)
    raw, corrected = [], []
    for _ in range(30):
        codes = rng.integers(0, 2, (2000, 3), dtype=np.uint8)
        s = rng.integers(0, 2, 2000)
        raw.append(plugin_bits(codes, s))
        corrected.append(plugin_information(codes, s).bits)
    # 8 x 2 cells: the plug-in is biased up by about 7 / (2 n ln 2) = 0.0025 bits.
    assert np.mean(raw) == pytest.approx(7 / (2 * 2000 * math.log(2)), rel=0.3)
    assert abs(np.mean(corrected)) < 0.0005
    # The correction is exactly the Miller-Madow count term.
    codes = rng.integers(0, 2, (500, 3), dtype=np.uint8)
    s = rng.integers(0, 3, 500)
    k_t = distinct_codes(codes)
    k_tl = len(set(zip(map(bytes, codes), s)))
    expected = plugin_bits(codes, s) - (k_tl - k_t - 3 + 1) / (2 * 500 * math.log(2))
    assert plugin_information(codes, s).bits == pytest.approx(expected, abs=1e-12)


def test_distinct_codes():
    codes = np.array([[0, 1, 1], [0, 1, 1], [1, 0, 0], [0, 0, 0]], dtype=np.uint8)
    assert distinct_codes(codes) == 3
    assert distinct_codes(np.zeros((0, 4), dtype=np.uint8)) == 0
    wide = np.random.default_rng(0).integers(0, 2, (300, 40), dtype=np.uint8)
    assert distinct_codes(wide) == len({bytes(row) for row in wide})


# -- the differentiable joint loss ----------------------------------------------------------------


@FAST
@given(case=theta_and_labels())
def test_torch_joint_equals_the_audit_value(case):
    theta, groups, n_labels = case
    value = joint_mutual_information(torch.from_numpy(theta), torch.from_numpy(groups), n_labels)
    assert value.item() == pytest.approx(joint_information(theta, groups).bits, abs=1e-10)


def test_torch_joint_gradients_are_finite_and_correct():
    theta, labels = small_case(5, n=12, m=4, n_labels=3)
    theta = torch.tensor(theta, requires_grad=True)
    groups = torch.from_numpy(labels)
    assert torch.autograd.gradcheck(lambda t: joint_mutual_information(t, groups, 3), (theta,))
    # Saturated float32 probabilities: whole groups underflow a max-shifted sum there.
    saturated = torch.sigmoid(30 * torch.randn(64, 12)).requires_grad_()
    joint_mutual_information(saturated, torch.randint(0, 3, (64,)), 3).backward()
    assert torch.isfinite(saturated.grad).all()


def test_torch_joint_drops_an_absent_group():
    theta, labels = small_case(6, n=20, m=3)
    theta = torch.from_numpy(theta)
    absent = joint_mutual_information(theta, torch.from_numpy(labels * 2), 3)  # groups 0 and 2 only
    assert torch.isfinite(absent)
    assert absent.item() == pytest.approx(joint_mutual_information(theta, torch.from_numpy(labels), 2).item(), abs=1e-12)
    lonely = joint_mutual_information(theta.requires_grad_(), torch.zeros(20, dtype=torch.long), 2)
    lonely.backward()
    assert lonely.item() == 0.0 and torch.isfinite(theta.grad).all()


def test_torch_joint_of_one_neuron_is_the_per_neuron_value():
    theta, labels = small_case(7, n=30, m=1, n_labels=3)
    theta, groups = torch.from_numpy(theta), torch.from_numpy(labels)
    joint = joint_mutual_information(theta, groups, 3)
    assert joint.item() == pytest.approx(bernoulli_mutual_information(theta, groups, 3).item(), abs=1e-6)


def test_torch_joint_xor():
    theta, s = xor_layer()
    joint = joint_mutual_information(torch.from_numpy(theta).float(), torch.from_numpy(s), 2)
    assert joint.item() == pytest.approx(joint_information(theta, s).bits, abs=1e-4)


# -- sample weights -------------------------------------------------------------------------------


@st.composite
def weighted_case(draw):
    """(theta, labels, weights): a theta_and_labels case with integer weights 0-3, one positive at least."""
    theta, labels, _ = draw(theta_and_labels())
    weights = np.array(draw(st.lists(st.integers(0, 3), min_size=len(theta), max_size=len(theta))))
    weights[draw(st.integers(0, len(theta) - 1))] += 1
    return theta, labels, weights


@FAST
@given(case=weighted_case())
def test_integer_weights_give_the_figures_of_the_repeated_rows(case):
    """Frequency weights: a row of weight k is k copies of it, a row of weight 0 none."""
    theta, labels, weights = case
    repeated_theta, repeated_labels = np.repeat(theta, weights, axis=0), np.repeat(labels, weights)
    flows, joint = conditional_flows(theta, labels, sample_weight=weights)
    expected_flows, expected_joint = conditional_flows(repeated_theta, repeated_labels)
    assert joint.estimator == EXACT and joint.bits == pytest.approx(expected_joint.bits, abs=1e-9)
    assert flows == pytest.approx(expected_flows, abs=1e-9)
    assert joint_information(theta, labels, sample_weight=weights).bits == pytest.approx(expected_joint.bits, abs=1e-9)
    assert neuron_information(theta, labels, sample_weight=weights) == pytest.approx(
        neuron_information(repeated_theta, repeated_labels), abs=1e-9
    )
    assert neuron_entropies(theta, sample_weight=weights) == pytest.approx(neuron_entropies(repeated_theta), abs=1e-9)


def test_zero_weights_drop_their_rows_even_a_whole_label():
    theta, labels = small_case(8, n=30, m=4, n_labels=3)
    weights = np.where(np.arange(30) % 3 == 0, 0.0, 1.0 + np.arange(30) / 7)
    weights[labels == 2] = 0.0  # label 2 drops out of the prior and the posteriors
    kept = weights > 0
    flows, joint = conditional_flows(theta, labels, sample_weight=weights)
    expected_flows, expected_joint = conditional_flows(theta[kept], labels[kept], sample_weight=weights[kept])
    assert joint.bits == pytest.approx(expected_joint.bits, abs=1e-12) and flows == pytest.approx(expected_flows, abs=1e-12)
    assert neuron_information(theta, labels, sample_weight=weights) == pytest.approx(
        neuron_information(theta[kept], labels[kept], sample_weight=weights[kept]), abs=1e-12
    )
    codes = (theta > 0.5).astype(np.uint8)
    assert plugin_information(codes, labels, sample_weight=weights) == plugin_information(
        codes[kept], labels[kept], sample_weight=weights[kept]
    )


@pytest.mark.parametrize("weight", [1.0, 2.5])
def test_equal_weights_are_no_weights(weight):
    theta, labels = small_case(9, n=50, m=5)
    weights = np.full(50, weight)
    for max_terms in (DEFAULT_MAX_TERMS, 0):  # the exact path, then the Monte-Carlo one
        assert conditional_flow_estimate(theta, labels, max_terms=max_terms, samples=200, sample_weight=weights).joint == (
            conditional_flow_estimate(theta, labels, max_terms=max_terms, samples=200).joint
        )
    assert (neuron_information(theta, labels, sample_weight=weights) == neuron_information(theta, labels)).all()
    codes = (theta > 0.5).astype(np.uint8)
    assert plugin_information(codes, labels, sample_weight=weights) == plugin_information(codes, labels)


@pytest.mark.parametrize("seed", range(4))
def test_weighted_monte_carlo_agrees_with_weighted_exact(seed):
    theta, labels = small_case(seed, n=60, m=2 + seed, n_labels=2 + seed % 2)
    weights = np.random.default_rng(seed).exponential(size=60) * (np.arange(60) % 5 != 0)
    exact = conditional_flow_estimate(theta, labels, sample_weight=weights)
    sampled = conditional_flow_estimate(theta, labels, max_terms=0, samples=3000, seed=seed, sample_weight=weights)
    assert exact.joint.estimator == EXACT and sampled.joint.estimator == MONTE_CARLO
    assert abs(sampled.joint.bits - exact.joint.bits) <= 4 * sampled.joint.stderr + 1e-9
    assert (np.abs(sampled.flows - exact.flows) <= 4 * sampled.stderr + 1e-9).all()
    # The weights matter here: the unweighted figure is a different one.
    assert abs(conditional_flow_estimate(theta, labels).joint.bits - exact.joint.bits) > 4 * sampled.joint.stderr


def test_weighted_plugin_corrects_with_the_effective_sample_size():
    """The weighted counts give the repeated rows' plug-in figure; Miller-Madow's n is
    Kish's (sum w)^2 / sum w^2, so rescaling the weights changes nothing."""
    rng = np.random.default_rng(1)
    codes = rng.integers(0, 2, (200, 3), dtype=np.uint8)
    s = rng.integers(0, 3, 200)
    weights = rng.integers(1, 5, 200)
    estimate = plugin_information(codes, s, sample_weight=weights)
    n_effective = weights.sum() ** 2 / (weights**2).sum()
    k_t, k_tl = distinct_codes(codes), len(set(zip(map(bytes, codes), s)))
    raw = plugin_bits(np.repeat(codes, weights, axis=0), np.repeat(s, weights))
    assert estimate.bits == pytest.approx(raw - (k_tl - k_t - 3 + 1) / (2 * n_effective * math.log(2)), abs=1e-12)
    assert estimate.samples == 200
    assert plugin_information(codes, s, sample_weight=weights / 100).bits == pytest.approx(estimate.bits, abs=1e-12)


@pytest.mark.parametrize(
    "weights, message",
    [
        ([1.0, 2.0], "sample_weight must hold one weight per row"),
        ([1.0, -1.0, 1.0, 1.0], "sample_weight must not be negative"),
        ([1.0, np.nan, 1.0, 1.0], "sample_weight must contain only finite numbers"),
        ([0.0, 0.0, 0.0, 0.0], "sample_weight must have a positive, finite total"),
    ],
)
def test_invalid_weights_are_refused_naming_sample_weight(weights, message):
    theta, labels = np.full((4, 2), 0.5), np.array([0, 1, 0, 1])
    for measure in (joint_information, neuron_information, plugin_information):
        with pytest.raises(ParameterError, match=message):
            measure(theta.astype(np.uint8) if measure is plugin_information else theta, labels, sample_weight=weights)
