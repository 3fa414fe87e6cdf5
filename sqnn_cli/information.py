"""Entropies and mutual information of the stochastic binary layer, in bits.

The layer's neurons are Bernoulli variables with firing probabilities theta, so the
information they carry about a discrete attribute is computed exactly from theta, not
estimated from samples (DESIGN §2). The first part serves training (per mini-batch, as
torch tensors); the second measures the layer over a whole dataset for the audit
(numpy in, float64), plus the differentiable joint I(T;S) for the joint loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .jsonable import plain

__all__ = [
    "binary_entropy",
    "group_means",
    "bernoulli_mutual_information",
    "bernoulli_information_and_gradient",
    "group_indicators",
    "InformationEstimate",
    "FlowEstimate",
    "neuron_entropies",
    "neuron_information",
    "joint_information",
    "conditional_flows",
    "conditional_flow_estimate",
    "plugin_information",
    "distinct_codes",
    "joint_mutual_information",
    "sampled_joint_mutual_information",
]

_LN2 = math.log(2.0)
# Saturated sigmoids reach exactly 0 or 1 in float32; the entropy's gradient is infinite
# there, so probabilities are kept a hair inside the open interval.
_EPS = 1e-7


def binary_entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = -p log2 p - (1-p) log2 (1-p), elementwise."""
    p = p.clamp(_EPS, 1.0 - _EPS)
    return (torch.special.entr(p) + torch.special.entr(1.0 - p)) / _LN2


def group_means(theta: torch.Tensor, groups: torch.Tensor, n_groups: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group row counts (G,) and mean firing probabilities (G, m).

    Groups absent from ``groups`` get count 0 and mean 0; callers weight them by
    p(s) = 0, so they drop out without a NaN.
    """
    counts = torch.bincount(groups, minlength=n_groups).to(theta.dtype)
    sums = torch.zeros(n_groups, theta.shape[1], dtype=theta.dtype, device=theta.device)
    sums = sums.index_add(0, groups, theta)
    return counts, sums / counts.clamp_min(1.0).unsqueeze(1)


def bernoulli_mutual_information(
    theta: torch.Tensor, groups: torch.Tensor, n_groups: int, *, per_neuron: bool = False
) -> torch.Tensor:
    """I(T_i; S) under the empirical distribution of the rows, from theta.

    ``theta`` is (n, m), ``groups`` holds integer group indices in [0, n_groups).
    Returns the sum over neurons (the bernoulli loss) or, with ``per_neuron``, a (m,)
    tensor. T_i given a row is Bernoulli(theta_i), so T_i given S = s is
    Bernoulli(mean theta_i over the rows of s) and T_i is Bernoulli(mean theta_i).
    """
    counts, means = group_means(theta, groups, n_groups)
    p_s = counts / counts.sum()
    marginal = theta.mean(dim=0)
    conditional = (p_s.unsqueeze(1) * binary_entropy(means)).sum(dim=0)
    flows = binary_entropy(marginal) - conditional
    return flows if per_neuron else flows.sum()


def group_indicators(n_groups: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(n_groups, 1 + n_groups): row s is a 1 (every row is in the batch), then the
    indicator of group s. Indexed by a batch's group indices, it gives the membership
    rows ``bernoulli_information_and_gradient`` reads, which turn its group sums and
    per-row slopes into matrix products."""
    ones = torch.ones(n_groups, 1, dtype=dtype, device=device)
    return torch.cat([ones, torch.eye(n_groups, dtype=dtype, device=device)], dim=1)


@torch.no_grad()
def bernoulli_information_and_gradient(
    theta: torch.Tensor, membership: torch.Tensor, *, weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bernoulli loss (``bernoulli_mutual_information`` summed over neurons) and the
    gradient of ``weight`` times it with respect to ``theta``, in closed form.

    ``membership`` holds one row per batch row, ``group_indicators(n_groups)[groups]``;
    its cost grows with the number of groups, which is small in practice. With mu_i
    the batch's mean of theta_i and mu_si its mean over the rows of group s,
    H'(p) = -logit(p) / ln 2 and p(s) = n_s / n give

        dI / dtheta_ji = (logit(mu_{s_j,i}) - logit(mu_i)) / (n ln 2):

    each row is pulled from its own group's mean towards the batch's. This is the
    gradient autograd takes through ``bernoulli_mutual_information``, for a dozen
    operations instead of some forty; a training step is mostly the fixed cost of its
    operations (benchmarks/RESULTS.md). At a group mean outside (_EPS, 1 - _EPS) the
    slope at the clamp is kept where autograd's clamp passes 0. Only theta's gradient
    differs: theta is then 0 or 1 to float precision, so the sigmoid's derivative,
    which carries it into the network, is 0 or nearly so.
    """
    n = theta.shape[0]
    # Row 0 is the whole batch and row 1 + s group s: I = H(mu) - sum_s p(s) H(mu_s).
    sizes = membership.sum(dim=0)
    means = (membership.t() @ theta).div_(sizes.clamp_min(1.0).unsqueeze(1))  # absent group: 0
    weights = sizes.div_(-n)
    weights[0] = 1.0
    slopes = torch.logit(means, _EPS)
    # H(p) = softplus(l) - p l in nats, with l = logit(p): the slopes give the entropies.
    entropies = torch.nn.functional.softplus(slopes).sub_(means * slopes)
    information = (weights @ entropies).sum() / _LN2
    # Row j's membership row picks logit(mu_i) and logit(mu_{s_j,i}): negating the first
    # makes their difference one product.
    slopes[0].neg_()
    gradient = membership @ slopes.mul_(weight / (n * _LN2))
    return information, gradient


# ---------------------------------------------------------------------------------------
# Whole-dataset information of the layer (DESIGN §3-4)
#
# The dataset is the uniform mixture over its n rows, and given row j the layer's code is
# t ~ prod_i Bernoulli(theta_ji). Every measure below is a functional of that mixture.
# For a code t, write w_j(t) = p(t | x_j). Then p(t) = mean_j w_j(t) and the posterior of
# a label is p(l | t) = sum_{j in l} w_j(t) / sum_j w_j(t), so
#
#     I(T; L) = E_{t ~ p(t)} KL( p(l | t) || p(l) ).
#
# The exact path sums that over all 2^m codes; the Monte-Carlo path averages it over
# sampled codes. Both evaluate p(l | t) exactly over all rows, so the only randomness is
# which codes are visited.
# ---------------------------------------------------------------------------------------

EXACT = "exact-enumeration"
MONTE_CARLO = "monte-carlo"
PLUGIN = "plug-in (Miller-Madow)"

# The exact path evaluates 2^m * n log-likelihoods, the Monte-Carlo path samples * n, at
# about the same cost per entry (~3e-9 s on two cores). With these defaults the exact
# value is taken whenever it is no dearer than the estimate (on Adult, n = 48842: up to
# m = 14, about 2.5 s), and the estimate costs ~3 s (joint) or ~6 s (with the flows) for
# a standard error of about 0.003 bits on Adult with m = 32.
DEFAULT_MAX_TERMS = 2**30
DEFAULT_SAMPLES = 16384
# The exact path keeps a (2^m, labels) table of code masses to marginalise neurons out
# for the conditional flows; above 2^20 codes that table outgrows its usefulness and
# sampling is the better tool anyway.
_MAX_EXACT_NEURONS = 20
# Rows of the (codes, n) likelihood matrix are processed in chunks of about this many
# float64 entries (32 MiB), which bounds memory independently of n and m.
_CHUNK_ENTRIES = 2**22


@dataclass(frozen=True)
class InformationEstimate:
    """A mutual information in bits and how it was obtained."""

    bits: float
    estimator: str
    stderr: float | None = None  # None when exact
    samples: int | None = None  # sampled (or counted) codes behind the figure

    def to_dict(self) -> dict:
        return plain({"bits": self.bits, "estimator": self.estimator, "stderr": self.stderr, "samples": self.samples})


@dataclass(frozen=True)
class FlowEstimate:
    """Conditional flows I(T_i; L | T_-i) per neuron, their standard errors (None when
    exact) and the joint I(T; L) they were computed with."""

    flows: np.ndarray
    stderr: np.ndarray | None
    joint: InformationEstimate


def _audit_theta(theta) -> torch.Tensor:
    """theta as a clamped float64 tensor; clamped like ``binary_entropy`` so that no
    code has probability exactly 0 and every log-likelihood stays finite."""
    array = np.asarray(theta, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"theta must be a 2-D (rows, neurons) array, got shape {array.shape}")
    if array.shape[0] == 0:
        raise ValueError("theta has no rows")
    if not np.isfinite(array).all() or array.min(initial=0.0) < 0.0 or array.max(initial=0.0) > 1.0:
        raise ValueError("theta must hold probabilities in [0, 1]")
    return torch.from_numpy(array).clamp(_EPS, 1.0 - _EPS)


def _label_indices(labels, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Integer label of each row and the row count of each label."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must be a 1-D array of {n} entries, got shape {labels.shape}")
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    return inverse.reshape(-1), counts


def _prepare(theta, labels):
    """Clamped theta with its rows grouped by label, the label boundaries and log p(l).

    Grouping the rows makes each label a contiguous block of the likelihood matrix, so
    the per-label sums are slices instead of masked copies.
    """
    theta = _audit_theta(theta)
    inverse, counts = _label_indices(labels, theta.shape[0])
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    log_prior = torch.from_numpy(np.log(counts / counts.sum()))
    return theta[torch.from_numpy(order)], bounds, log_prior


def _all_codes(m: int, start: int = 0, stop: int | None = None, *, dtype=torch.float64, device=None) -> torch.Tensor:
    """Codes start..stop-1 of the 2^m, neuron 0 as the most significant bit (the order
    of itertools.product), so that a (2^m, ...) table reshapes to (2,)*m with axis i
    belonging to neuron i."""
    stop = 2**m if stop is None else stop
    index = torch.arange(start, stop, device=device).unsqueeze(1)
    shifts = torch.arange(m - 1, -1, -1, device=device)
    return ((index >> shifts) & 1).to(dtype)


def _likelihood_terms(theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(D, c) with log p(t | x_j) = t . D_j + c_j: the whole (codes, rows) likelihood
    matrix is then one matrix product."""
    log_on, log_off = torch.log(theta), torch.log1p(-theta)
    return log_on - log_off, log_off.sum(dim=1)


def _shifted_likelihoods(codes: torch.Tensor, slope: torch.Tensor, offset: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """w_j(t) / max_j w_j(t) for each code (a row of the result) and log max_j w_j(t).

    After the shift the largest weight is 1, so sums over rows neither overflow nor
    lose the dominant rows; in float64 nothing underflows below m ~ 44 (each neuron
    changes a log-likelihood by at most log(1/1e-7) ~ 16 nats).
    """
    log_w = torch.addmm(offset, codes, slope.T)
    peak = log_w.amax(dim=1, keepdim=True)
    return log_w.sub_(peak).exp_(), peak.squeeze(1)


def _label_masses(weights: torch.Tensor, bounds: list[int]) -> torch.Tensor:
    """Sum of the weights over the rows of each label: (codes, labels)."""
    return torch.stack([weights[:, a:b].sum(dim=1) for a, b in zip(bounds[:-1], bounds[1:])], dim=1)


def _posterior_kl_bits(mass: torch.Tensor, log_prior: torch.Tensor) -> torch.Tensor:
    """KL(p(l | t) || p(l)) in bits, with p(l | t) proportional to ``mass`` (last axis).

    A label whose mass underflowed has posterior 0 and contributes nothing.
    """
    posterior = mass / mass.sum(dim=-1, keepdim=True)
    return torch.special.xlogy(posterior, posterior).sub(posterior * log_prior).sum(dim=-1) / _LN2


def _information_from_log_mass(log_mass: torch.Tensor, log_prior: torch.Tensor, n_rows: int) -> torch.Tensor:
    """I(T; L) = sum_t p(t) KL(p(l | t) || p(l)) from log sum_{j in l} w_j(t), (codes, labels).

    Differentiable and free of -inf as long as ``log_mass`` is finite.
    """
    log_p_t = torch.logsumexp(log_mass, dim=1) - math.log(n_rows)
    log_posterior = torch.log_softmax(log_mass, dim=1)
    kl = (log_posterior.exp() * (log_posterior - log_prior)).sum(dim=1)
    return (log_p_t.exp() * kl).sum() / _LN2


def _exact_log_mass(theta: torch.Tensor, bounds: list[int]) -> torch.Tensor:
    """log sum_{j in l} p(t | x_j) for all 2^m codes, (2^m, labels), chunked over codes."""
    n, m = theta.shape
    slope, offset = _likelihood_terms(theta)
    chunk = max(1, _CHUNK_ENTRIES // n)
    parts = []
    for start in range(0, 2**m, chunk):
        codes = _all_codes(m, start, min(start + chunk, 2**m))
        weights, log_peak = _shifted_likelihoods(codes, slope, offset)
        parts.append(torch.log(_label_masses(weights, bounds)) + log_peak.unsqueeze(1))
    return torch.cat(parts)


def _use_exact(n: int, m: int, max_terms: int) -> bool:
    return m <= _MAX_EXACT_NEURONS and 2**m * n <= max_terms


def _sample_codes(theta: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """Codes drawn from p(t): a row, then t ~ p(t | row).

    Rows are visited as a concatenation of random permutations (each row at most once
    until all have been used), which keeps every draw marginally uniform, hence the
    estimate unbiased, and only lowers its variance compared with independent draws;
    the reported stderr (std / sqrt(samples)) is therefore slightly conservative.
    """
    if samples < 2:
        raise ValueError(f"samples must be at least 2, got {samples}")
    n = theta.shape[0]
    rng = np.random.default_rng(seed)
    rows = np.concatenate([rng.permutation(n) for _ in range(-(-samples // n))])[:samples]
    uniforms = torch.from_numpy(rng.random((samples, theta.shape[1])))
    return (uniforms < theta[torch.from_numpy(rows)]).to(torch.float64)


def _monte_carlo(theta, bounds, log_prior, samples: int, seed: int, *, flows: bool):
    """Per-sample KL(p(l | t) || p(l)) for the sampled codes and, with ``flows``, the
    per-sample differences KL(t) - KL(t_-i) for every neuron i (common random numbers:
    t_-i is the same draw with coordinate i dropped).

    Dropping neuron i divides each row's weight by p(t_i | x_j), i.e. multiplies it by
    1/theta_ji or 1/(1 - theta_ji); so the leave-one-out masses of all m neurons are two
    matrix products of the weight matrix with 1/theta and 1/(1 - theta), instead of m
    more passes of exponentials over the (samples, n) likelihood matrix.
    """
    n, m = theta.shape
    slope, offset = _likelihood_terms(theta)
    codes = _sample_codes(theta, samples, seed)
    # Concatenated [1/theta, 1/(1-theta)] so both products are one matmul per label.
    inverse = torch.cat([theta.reciprocal(), (1.0 - theta).reciprocal()], dim=1)
    chunk = max(1, _CHUNK_ENTRIES // n)
    joint_terms, flow_terms = [], []
    for start in range(0, samples, chunk):
        sampled = codes[start : start + chunk]
        weights, _ = _shifted_likelihoods(sampled, slope, offset)
        mass = _label_masses(weights, bounds)
        kl = _posterior_kl_bits(mass, log_prior)
        joint_terms.append(kl)
        if flows:
            blocks = [weights[:, a:b] @ inverse[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
            dropped = torch.stack(blocks, dim=2)  # (chunk, 2m, labels)
            # Drop neuron i: the row weights lose the factor of the value t_i actually took.
            leave_one_out = torch.where(sampled.bool().unsqueeze(2), dropped[:, :m], dropped[:, m:])
            flow_terms.append(kl.unsqueeze(1) - _posterior_kl_bits(leave_one_out, log_prior))
    joint = torch.cat(joint_terms).numpy()
    return joint, (torch.cat(flow_terms).numpy() if flows else None)


def _mean_and_stderr(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return values.mean(axis=0), values.std(axis=0, ddof=1) / math.sqrt(len(values))


def neuron_entropies(theta) -> np.ndarray:
    """H(T_i) = H(mean_j theta_ji) in bits, shape (m,)."""
    theta = torch.from_numpy(np.asarray(theta, dtype=np.float64))
    if theta.ndim != 2:
        raise ValueError(f"theta must be a 2-D (rows, neurons) array, got shape {tuple(theta.shape)}")
    return binary_entropy(theta.mean(dim=0)).numpy()


def neuron_information(theta, labels) -> np.ndarray:
    """Exact I(T_i; L) per neuron in bits, shape (m,): the training loss's per-neuron
    terms (``bernoulli_mutual_information``), evaluated in float64 over the whole data."""
    theta = torch.from_numpy(np.asarray(theta, dtype=np.float64))
    if theta.ndim != 2:
        raise ValueError(f"theta must be a 2-D (rows, neurons) array, got shape {tuple(theta.shape)}")
    inverse, counts = _label_indices(labels, theta.shape[0])
    groups = torch.from_numpy(inverse.astype(np.int64))
    return bernoulli_mutual_information(theta, groups, len(counts), per_neuron=True).numpy()


def joint_information(
    theta, labels, *, max_terms: int = DEFAULT_MAX_TERMS, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> InformationEstimate:
    """I(T; L) of the whole layer in bits.

    Exact by enumerating the 2^m codes when 2^m * n <= ``max_terms`` (and m <= 20);
    otherwise a seeded Monte-Carlo average of KL(p(l | t) || p(l)) over ``samples``
    codes drawn from p(t), with p(l | t) evaluated exactly over all rows. Averaging the
    KL (the expectation over l given t) instead of log p(t | l_j) / p(t) for the sampled
    row's own label is a Rao-Blackwellisation: same mean, lower variance, never negative.
    """
    return conditional_flow_estimate(theta, labels, max_terms=max_terms, samples=samples, seed=seed, flows=False).joint


def conditional_flows(
    theta, labels, *, max_terms: int = DEFAULT_MAX_TERMS, samples: int = DEFAULT_SAMPLES, seed: int = 0
) -> tuple[np.ndarray, InformationEstimate]:
    """Per neuron I(T_i; L | T_-i) = I(T; L) - I(T_-i; L) in bits, and the joint I(T; L).

    The joint estimate is the one ``joint_information`` returns for the same arguments.
    """
    estimate = conditional_flow_estimate(theta, labels, max_terms=max_terms, samples=samples, seed=seed)
    return estimate.flows, estimate.joint


def conditional_flow_estimate(
    theta,
    labels,
    *,
    max_terms: int = DEFAULT_MAX_TERMS,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    flows: bool = True,
) -> FlowEstimate:
    """``conditional_flows`` with the standard error of each flow.

    On the Monte-Carlo path every leave-one-out term reuses the joint's sampled codes,
    so a flow's error is that of a difference of strongly correlated terms, far smaller
    than the joint's own. ``flows=False`` skips them (``flows`` is then empty).
    """
    theta, bounds, log_prior = _prepare(theta, labels)
    n, m = theta.shape
    if m == 0 or len(bounds) == 2:
        # No neurons, or a single label: there is nothing to know.
        joint = InformationEstimate(0.0, EXACT)
        return FlowEstimate(np.zeros(m if flows else 0), None, joint)
    if _use_exact(n, m, max_terms):
        log_mass = _exact_log_mass(theta, bounds)
        bits = _information_from_log_mass(log_mass, log_prior, n).item()
        joint = InformationEstimate(bits, EXACT)
        if not flows:
            return FlowEstimate(np.zeros(0), None, joint)
        table = log_mass.reshape((2,) * m + (-1,))
        marginal = [
            _information_from_log_mass(torch.logsumexp(table, dim=i).reshape(2 ** (m - 1), -1), log_prior, n).item()
            for i in range(m)
        ]
        return FlowEstimate(bits - np.asarray(marginal), None, joint)
    joint_terms, flow_terms = _monte_carlo(theta, bounds, log_prior, samples, seed, flows=flows)
    bits, stderr = _mean_and_stderr(joint_terms)
    joint = InformationEstimate(float(bits), MONTE_CARLO, float(stderr), samples)
    if not flows:
        return FlowEstimate(np.zeros(0), None, joint)
    flow_bits, flow_stderr = _mean_and_stderr(flow_terms)
    return FlowEstimate(flow_bits, flow_stderr, joint)


def _code_ids(codes) -> np.ndarray:
    """An integer id per row of a (n, m) bit matrix, equal rows sharing an id."""
    codes = np.asarray(codes)
    if codes.ndim != 2:
        raise ValueError(f"codes must be a 2-D (rows, neurons) array, got shape {codes.shape}")
    packed = np.packbits(codes.astype(bool), axis=1)
    return np.unique(packed, axis=0, return_inverse=True)[1].reshape(-1)


def distinct_codes(codes) -> int:
    """Number of distinct rows (codes) in a (n, m) bit matrix."""
    codes = np.asarray(codes)
    return 0 if codes.shape[0] == 0 else int(_code_ids(codes).max() + 1)


def _plugin_entropy_nats(ids: np.ndarray) -> tuple[float, int]:
    """Plug-in entropy of the empirical distribution of ``ids`` and its support size."""
    counts = np.unique(ids, return_counts=True)[1]
    p = counts / counts.sum()
    return float(-(p * np.log(p)).sum()), len(counts)


def plugin_information(codes, labels) -> InformationEstimate:
    """I(T; L) from counted codes (one sampled code per row) with the Miller-Madow
    correction, in bits.

    Each plug-in entropy underestimates by about (K - 1) / (2n) nats for K occupied
    cells, so I = H(T) + H(L) - H(T, L) overestimates by (K_tl - K_t - K_l + 1) / (2n);
    that is subtracted. The corrected figure can dip slightly below 0 and is not clipped
    (clipping would bias it up). With as many distinct codes as rows, as on a wide layer,
    it is still biased upwards: the third, biased figure of DESIGN §3.
    """
    codes = np.asarray(codes)
    n = codes.shape[0]
    if n == 0:
        raise ValueError("codes has no rows")
    code_ids = _code_ids(codes)
    label_ids, _ = _label_indices(labels, n)
    h_t, k_t = _plugin_entropy_nats(code_ids)
    h_l, k_l = _plugin_entropy_nats(label_ids)
    h_tl, k_tl = _plugin_entropy_nats(code_ids * (label_ids.max() + 1) + label_ids)
    plugin = h_t + h_l - h_tl
    corrected = plugin - (k_tl - k_t - k_l + 1) / (2.0 * n)
    return InformationEstimate(corrected / _LN2, PLUGIN, None, n)


def _batch_group_log_mass(log_w: torch.Tensor, groups: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    """log sum_{j in s} w_j(t) for each code (rows of ``log_w``) and each present group.

    One max-shift per code and one matrix product with the group indicator replace a
    log-sum-exp per group: the training loss runs this for every mini-batch. A group
    whose whole mass underflows after the shift gets a tiny floor instead of log 0, so
    its posterior is (correctly) ~0 and its gradient stays finite.
    """
    peak = log_w.detach().amax(dim=1, keepdim=True)
    weights = torch.exp(log_w - peak)
    indicator = torch.nn.functional.one_hot(groups, int(present.numel() and groups.max() + 1)).to(log_w.dtype)
    mass = (weights @ indicator)[:, present]
    return torch.log(mass.clamp_min(torch.finfo(log_w.dtype).tiny)) + peak


def joint_mutual_information(theta: torch.Tensor, groups: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Differentiable exact I(T; S) of a mini-batch in bits, enumerating all 2^m codes
    (the joint loss of DESIGN §2; time and memory grow as 2^m * batch).

    Groups absent from the batch drop out. Computed in theta's dtype and device.
    """
    theta = theta.clamp(_EPS, 1.0 - _EPS)
    n, m = theta.shape
    counts = torch.bincount(groups, minlength=n_groups)
    present = torch.nonzero(counts).flatten()
    if m == 0 or present.numel() < 2:
        return theta.sum() * 0.0  # keeps the graph (and a zero gradient) intact
    slope, offset = _likelihood_terms(theta)
    log_w = torch.addmm(offset, _all_codes(m, dtype=theta.dtype, device=theta.device), slope.T)
    log_mass = _batch_group_log_mass(log_w, groups, present)
    log_prior = torch.log(counts[present].to(theta.dtype) / n)
    return _information_from_log_mass(log_mass, log_prior, n)


def sampled_joint_mutual_information(
    theta: torch.Tensor, groups: torch.Tensor, n_groups: int, *, samples: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Monte-Carlo I(T; S) of a mini-batch for layers too wide to enumerate.

    Returns ``(estimate, surrogate)``. ``estimate`` (no gradient) is an unbiased
    estimate of the batch's I(T;S): codes t are drawn from the batch mixture p(t) and
    each contributes f(t) = KL(p(s | t) || p(s)), with p(t | s) and p(t) evaluated
    exactly over the batch rows. ``surrogate``'s gradient is an unbiased estimate of
    the gradient of I: the pathwise term grad f(t) plus the score-function term
    (f(t) - b) grad log p(t), where the baseline b is the mean of the other samples'
    f (leave-one-out, so it does not depend on the sample it multiplies). Sampling t
    itself carries no gradient, which is why the score-function term is needed
    (DESIGN §2); its variance is what ``samples`` buys down.
    """
    if samples < 2:
        raise ValueError(f"samples must be at least 2, got {samples}")
    theta = theta.clamp(_EPS, 1.0 - _EPS)
    n, m = theta.shape
    counts = torch.bincount(groups, minlength=n_groups)
    present = torch.nonzero(counts).flatten()
    if m == 0 or present.numel() < 2:
        zero = theta.sum() * 0.0
        return zero.detach(), zero
    rows = torch.randint(n, (samples,), generator=generator, device=theta.device)
    codes = torch.bernoulli(theta.detach()[rows], generator=generator)
    slope, offset = _likelihood_terms(theta)
    log_w = torch.addmm(offset, codes, slope.T)  # log p(t_k | x_j): (samples, n)
    log_mass = _batch_group_log_mass(log_w, groups, present)
    log_prior = torch.log(counts[present].to(theta.dtype) / n)
    log_posterior = torch.log_softmax(log_mass, dim=1)
    f = (log_posterior.exp() * (log_posterior - log_prior)).sum(dim=1) / _LN2
    log_marginal = torch.logsumexp(log_mass, dim=1) - math.log(n)
    values = f.detach()
    baseline = (values.sum() - values) / (samples - 1)
    surrogate = (f + (values - baseline) * log_marginal).mean()
    return values.mean(), surrogate
