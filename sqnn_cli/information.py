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
from typing import Callable

import numpy as np
import torch

from .jsonable import plain
from .metrics import checked_sample_weight

__all__ = [
    "binary_entropy",
    "group_means",
    "bernoulli_mutual_information",
    "bernoulli_information_and_gradient",
    "group_indicators",
    "InformationCells",
    "information_cells",
    "conditional_on_labels",
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


def group_means(
    theta: torch.Tensor, groups: torch.Tensor, n_groups: int, row_weights: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-group masses (G,) (row counts, or sums of ``row_weights``) and mean firing
    probabilities (G, m), weighted by ``row_weights`` if given.

    Groups absent from ``groups`` get mass 0 and mean 0; callers weight them by
    p(s) = 0, so they drop out without a NaN.
    """
    if row_weights is None:
        counts = torch.bincount(groups, minlength=n_groups).to(theta.dtype)
        sums = torch.zeros(n_groups, theta.shape[1], dtype=theta.dtype, device=theta.device)
        sums = sums.index_add(0, groups, theta)
        return counts, sums / counts.clamp_min(1.0).unsqueeze(1)
    row_weights = row_weights.to(theta.dtype)
    masses = torch.zeros(n_groups, dtype=theta.dtype, device=theta.device).index_add(0, groups, row_weights)
    sums = torch.zeros(n_groups, theta.shape[1], dtype=theta.dtype, device=theta.device)
    sums = sums.index_add(0, groups, theta * row_weights.unsqueeze(1))
    return masses, sums / masses.clamp_min(torch.finfo(theta.dtype).tiny).unsqueeze(1)


def bernoulli_mutual_information(
    theta: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    *,
    per_neuron: bool = False,
    row_weights: torch.Tensor | None = None,
) -> torch.Tensor:
    """I(T_i; S) under the empirical distribution of the rows (weighted by ``row_weights``
    if given), from theta.

    ``theta`` is (n, m), ``groups`` holds integer group indices in [0, n_groups).
    Returns the sum over neurons (the bernoulli loss) or, with ``per_neuron``, a (m,)
    tensor. T_i given a row is Bernoulli(theta_i), so T_i given S = s is
    Bernoulli(mean theta_i over the rows of s) and T_i is Bernoulli(mean theta_i).
    """
    masses, means = group_means(theta, groups, n_groups, row_weights)
    p_s = masses / masses.sum()
    marginal = (p_s.unsqueeze(1) * means).sum(dim=0) if row_weights is not None else theta.mean(dim=0)
    conditional = (p_s.unsqueeze(1) * binary_entropy(means)).sum(dim=0)
    flows = binary_entropy(marginal) - conditional
    return flows if per_neuron else flows.sum()


def conditional_on_labels(
    information: Callable[..., tuple[torch.Tensor, ...]],
    theta: torch.Tensor,
    groups: torch.Tensor,
    labels: torch.Tensor,
    row_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:
    """I(T;S|Y) = sum_y p(y) I(T;S | Y=y), for each of the tensors that
    ``information(theta, groups, row_weights)`` returns of the rows it is given (an I(T;S)
    and, say, the surrogate whose gradient estimates I's): taken within each label's
    rows, weighted by the label's share of the rows (or of their weight). A label absent
    from the batch drops out."""
    labels = labels.to(torch.int64)
    mass = float(row_weights.sum()) if row_weights is not None else float(len(labels))
    totals: list[torch.Tensor] = []
    for label in torch.unique(labels).tolist():
        rows = torch.nonzero(labels == label).flatten()
        weights = row_weights.index_select(0, rows) if row_weights is not None else None
        share = (float(weights.sum()) if weights is not None else float(len(rows))) / mass
        parts = information(theta.index_select(0, rows), groups.index_select(0, rows), weights)
        totals = [share * part for part in parts] if not totals else [t + share * part for t, part in zip(totals, parts)]
    return tuple(totals) if totals else (theta.sum() * 0.0,)


def group_indicators(n_groups: int, *, dtype: torch.dtype = torch.float32, device=None) -> torch.Tensor:
    """(n_groups, 1 + n_groups): row s is a 1 (every row is in the batch), then the
    indicator of group s. Indexed by a batch's group indices, it gives the membership
    rows ``bernoulli_information_and_gradient`` reads, which turn its group sums and
    per-row slopes into matrix products."""
    ones = torch.ones(n_groups, 1, dtype=dtype, device=device)
    return torch.cat([ones, torch.eye(n_groups, dtype=dtype, device=device)], dim=1)


@dataclass(frozen=True)
class InformationCells:
    """The cells whose mean firing rates the bernoulli loss compares, for an objective.

    I = sum_k sign_k p(k) H(mu_k) over the cells k (columns of ``indicators``), each a set
    of rows with share p(k) and mean theta mu_k:
      independence, I(T_i;S) = H(T_i) - H(T_i|S): cells "all rows" (+) and each group (-);
      separation, I(T_i;S|Y) = H(T_i|Y) - H(T_i|S,Y): each label (+) and each (label,
      group) pair (-).
    A row's cells are the row of ``indicators`` its key picks (``membership``).
    """

    indicators: torch.Tensor  # (keys, cells)
    signs: torch.Tensor  # (cells,)
    n_groups: int
    separation: bool

    def membership(self, groups: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        keys = labels.to(torch.int64) * self.n_groups + groups if self.separation else groups
        return self.indicators.index_select(0, keys)


def information_cells(
    n_groups: int, objective: str = "independence", *, dtype: torch.dtype = torch.float32, device=None
) -> InformationCells:
    """The cells of ``objective`` ("independence": I(T;S); "separation": I(T;S|Y))."""
    if objective == "independence":
        signs = _independence_signs(n_groups, dtype=dtype, device=device)
        return InformationCells(group_indicators(n_groups, dtype=dtype, device=device), signs, n_groups, False)
    if objective != "separation":
        raise ValueError(f"objective must be 'independence' or 'separation', got {objective!r}")
    # Key y * n_groups + s: its label's indicator, then its (label, group) cell's.
    label_of_key = torch.arange(2 * n_groups, device=device) // n_groups
    label_part = torch.nn.functional.one_hot(label_of_key, 2).to(dtype)
    cell_part = torch.eye(2 * n_groups, dtype=dtype, device=device)
    signs = torch.cat([torch.ones(2, dtype=dtype, device=device), -torch.ones(2 * n_groups, dtype=dtype, device=device)])
    return InformationCells(torch.cat([label_part, cell_part], dim=1), signs, n_groups, True)


def _independence_signs(n_groups: int, *, dtype: torch.dtype, device) -> torch.Tensor:
    """The batch's cell (+), then each group's (-): I(T;S) = H(T) - H(T|S)."""
    signs = torch.full((1 + n_groups,), -1.0, dtype=dtype, device=device)
    signs[0] = 1.0
    return signs


@torch.no_grad()
def bernoulli_information_and_gradient(
    theta: torch.Tensor,
    membership: torch.Tensor,
    *,
    weight: float = 1.0,
    signs: torch.Tensor | None = None,
    row_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The bernoulli loss (``bernoulli_mutual_information`` summed over neurons, or its
    separation form) and the gradient of ``weight`` times it with respect to ``theta``,
    in closed form.

    ``membership`` holds one row per batch row, the cells it belongs to
    (``InformationCells.membership``; ``group_indicators(n_groups)[groups]`` for
    independence), and ``signs`` the cells' signs (None: independence's). Its cost grows
    with the number of cells, which is small in practice. With W the batch's total weight
    (its row count without ``row_weights``), w_j row j's weight, mu_k cell k's weighted
    mean of theta and p(k) its share of W, I = sum_k sign_k p(k) H(mu_k) and
    H'(p) = -logit(p) / ln 2 give

        dI / dtheta_ji = -(w_j / (W ln 2)) sum_{k containing j} sign_k logit(mu_ki):

    for independence, each row is pulled from its own group's mean towards the batch's.
    This is the gradient autograd takes through ``bernoulli_mutual_information``, for a
    dozen operations instead of some forty; a training step is mostly the fixed cost of
    its operations (benchmarks/RESULTS.md). At a cell mean outside (_EPS, 1 - _EPS) the
    slope at the clamp is kept where autograd's clamp passes 0. Only theta's gradient
    differs: theta is then 0 or 1 to float precision, so the sigmoid's derivative,
    which carries it into the network, is 0 or nearly so.

    ``theta`` may also be a stack (models, n, m) of models sharing the batch's rows, with
    ``weight`` a (models, 1, 1) float64 tensor: then each model gets its own loss and gradient.
    """
    if row_weights is None:
        total = float(theta.shape[-2])
        masses = membership.sum(dim=0)
        weighted_membership = membership
    else:
        total = float(row_weights.sum())
        weighted_membership = membership * row_weights.unsqueeze(1)
        masses = weighted_membership.sum(dim=0)
    if signs is None:
        signs = _independence_signs(membership.shape[1] - 1, dtype=theta.dtype, device=theta.device)
    means = (weighted_membership.t() @ theta).div_(masses.clamp_min(_cell_floor(masses, row_weights)).unsqueeze(1))
    shares = masses.div_(total).mul_(signs)
    slopes = torch.logit(means, _EPS)
    # H(p) = softplus(l) - p l in nats, with l = logit(p): the slopes give the entropies.
    entropies = torch.nn.functional.softplus(slopes).sub_(means * slopes)
    # The sum over the last axis alone: a stack of models (batched.py) gets one figure each.
    information = (shares @ entropies).sum(-1) / _LN2
    # Negated slopes turn -sum over a row's cells of sign_k logit(mu_k) into one product.
    scale = -weight / (total * _LN2)
    if isinstance(scale, torch.Tensor):  # one per model, in double: rounded as a float's would be
        scale = scale.to(theta.dtype)
    gradient = membership @ slopes.mul_(signs.unsqueeze(1)).mul_(scale)
    if row_weights is not None:
        gradient.mul_(row_weights.unsqueeze(1))
    return information, gradient


def _cell_floor(masses: torch.Tensor, row_weights: torch.Tensor | None) -> float:
    """The divisor of an empty cell's mean (whose sum is 0, so its mean is 0): 1 row, or
    the smallest positive float when weights may be fractions."""
    return 1.0 if row_weights is None else torch.finfo(masses.dtype).tiny


# ---------------------------------------------------------------------------------------
# Whole-dataset information of the layer (DESIGN §3-4)
#
# The dataset is the mixture over its n rows, row j with weight pi_j (1/n; with
# sample_weight, pi_j = v_j / sum v: frequency weights, so integer weights give the
# figures of the table with rows repeated, and a row of weight 0 is a row dropped), and
# given row j the layer's code is t ~ prod_i Bernoulli(theta_ji). Every measure below is
# a functional of that mixture. For a code t, write w_j(t) = p(t | x_j). Then
# p(t) = sum_j pi_j w_j(t), the prior of a label is p(l) = sum_{j in l} pi_j and its
# posterior is p(l | t) = sum_{j in l} pi_j w_j(t) / sum_j pi_j w_j(t), so
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


def checked_weights(sample_weight, n_rows: int) -> np.ndarray | None:
    """``sample_weight`` through metrics' one check, and None where all weights are equal:
    they describe the unweighted mixture, which the unweighted code computes bit for bit
    (the weighted code would only round differently, or draw other codes)."""
    weights = checked_sample_weight(sample_weight, n_rows)
    return None if weights is None or (weights == weights[0]).all() else weights


@dataclass(frozen=True)
class _Mixture:
    """The rows as the mixture the measures are functionals of: clamped theta with its
    rows grouped by label, the label boundaries, log p(l), the rows' weights in that
    order (None: equal) and their total (the row count without weights)."""

    theta: torch.Tensor
    bounds: list[int]
    log_prior: torch.Tensor
    weights: torch.Tensor | None
    total: float


def _prepare(theta, labels, sample_weight=None) -> _Mixture:
    """The mixture of ``theta``'s rows, weighted by ``sample_weight``.

    Grouping the rows makes each label a contiguous block of the likelihood matrix, so
    the per-label sums are slices instead of masked copies. A row of weight 0 is no
    part of the mixture, and its log weight would be -inf: it is dropped.
    """
    theta = _audit_theta(theta)
    inverse, counts = _label_indices(labels, theta.shape[0])
    weights = checked_weights(sample_weight, theta.shape[0])
    if weights is not None:
        kept = weights > 0
        theta, weights = theta[torch.from_numpy(kept)], weights[kept]
        inverse, counts = _label_indices(np.asarray(labels)[kept], len(weights))
    order = np.argsort(inverse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(counts)]).tolist()
    masses = counts if weights is None else np.bincount(inverse, weights=weights)
    log_prior = torch.from_numpy(np.log(masses / masses.sum()))
    ordered = None if weights is None else torch.from_numpy(weights[order])
    total = theta.shape[0] if weights is None else float(weights.sum())
    return _Mixture(theta[torch.from_numpy(order)], bounds, log_prior, ordered, total)


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


def _exact_log_mass(mixture: _Mixture) -> torch.Tensor:
    """log sum_{j in l} v_j p(t | x_j) for all 2^m codes, (2^m, labels), chunked over
    codes; v_j is row j's weight, 1 without weights."""
    theta, bounds = mixture.theta, mixture.bounds
    n, m = theta.shape
    slope, offset = _weighted_likelihood_terms(theta, mixture.weights)
    chunk = max(1, _CHUNK_ENTRIES // n)
    parts = []
    for start in range(0, 2**m, chunk):
        codes = _all_codes(m, start, min(start + chunk, 2**m))
        weights, log_peak = _shifted_likelihoods(codes, slope, offset)
        parts.append(torch.log(_label_masses(weights, bounds)) + log_peak.unsqueeze(1))
    return torch.cat(parts)


def _use_exact(n: int, m: int, max_terms: int) -> bool:
    return m <= _MAX_EXACT_NEURONS and 2**m * n <= max_terms


def _sample_codes(theta: torch.Tensor, samples: int, seed: int, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Codes drawn from p(t): a row (in proportion to ``weights`` if given), then
    t ~ p(t | row).

    Rows are visited as a concatenation of random permutations (each row at most once
    until all have been used), which keeps every draw marginally uniform, hence the
    estimate unbiased, and only lowers its variance compared with independent draws;
    the reported stderr (std / sqrt(samples)) is therefore slightly conservative.
    Weighted rows are drawn systematically, the same idea: ``samples`` evenly spaced
    points, shifted by one uniform, on the cumulative weights, taken in random order.
    Each draw is still marginally row j with probability pi_j, and row j is drawn
    within one of pi_j * samples times.
    """
    if samples < 2:
        raise ValueError(f"samples must be at least 2, got {samples}")
    n = theta.shape[0]
    rng = np.random.default_rng(seed)
    if weights is None:
        rows = np.concatenate([rng.permutation(n) for _ in range(-(-samples // n))])[:samples]
    else:
        cumulative = np.cumsum(weights.numpy())
        points = (rng.permutation(samples) + rng.random()) / samples * cumulative[-1]
        rows = np.minimum(np.searchsorted(cumulative, points, side="right"), n - 1)
    uniforms = torch.from_numpy(rng.random((samples, theta.shape[1])))
    return (uniforms < theta[torch.from_numpy(rows)]).to(torch.float64)


def _monte_carlo(mixture: _Mixture, samples: int, seed: int, *, flows: bool):
    """Per-sample KL(p(l | t) || p(l)) for the sampled codes and, with ``flows``, the
    per-sample differences KL(t) - KL(t_-i) for every neuron i (common random numbers:
    t_-i is the same draw with coordinate i dropped).

    Dropping neuron i divides each row's weight by p(t_i | x_j), i.e. multiplies it by
    1/theta_ji or 1/(1 - theta_ji); so the leave-one-out masses of all m neurons are two
    matrix products of the weight matrix with 1/theta and 1/(1 - theta), instead of m
    more passes of exponentials over the (samples, n) likelihood matrix. Row weights
    are factors of the row weights too, so they pass through unchanged.
    """
    theta, bounds, log_prior = mixture.theta, mixture.bounds, mixture.log_prior
    n, m = theta.shape
    slope, offset = _weighted_likelihood_terms(theta, mixture.weights)
    codes = _sample_codes(theta, samples, seed, mixture.weights)
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


def neuron_entropies(theta, sample_weight=None) -> np.ndarray:
    """H(T_i) = H(mean_j theta_ji) in bits (the mean weighted by ``sample_weight`` if
    given), shape (m,)."""
    theta = torch.from_numpy(np.asarray(theta, dtype=np.float64))
    if theta.ndim != 2:
        raise ValueError(f"theta must be a 2-D (rows, neurons) array, got shape {tuple(theta.shape)}")
    weights = checked_weights(sample_weight, theta.shape[0])
    if weights is None:
        return binary_entropy(theta.mean(dim=0)).numpy()
    return binary_entropy(torch.from_numpy(np.average(theta.numpy(), axis=0, weights=weights))).numpy()


def neuron_information(theta, labels, sample_weight=None) -> np.ndarray:
    """Exact I(T_i; L) per neuron in bits, shape (m,): the training loss's per-neuron
    terms (``bernoulli_mutual_information``), evaluated in float64 over the whole data
    (its rows weighted by ``sample_weight`` if given)."""
    theta = torch.from_numpy(np.asarray(theta, dtype=np.float64))
    if theta.ndim != 2:
        raise ValueError(f"theta must be a 2-D (rows, neurons) array, got shape {tuple(theta.shape)}")
    inverse, counts = _label_indices(labels, theta.shape[0])
    groups = torch.from_numpy(inverse.astype(np.int64))
    weights = checked_weights(sample_weight, theta.shape[0])
    row_weights = None if weights is None else torch.from_numpy(weights)
    return bernoulli_mutual_information(theta, groups, len(counts), per_neuron=True, row_weights=row_weights).numpy()


def joint_information(
    theta, labels, *, max_terms: int = DEFAULT_MAX_TERMS, samples: int = DEFAULT_SAMPLES, seed: int = 0, sample_weight=None
) -> InformationEstimate:
    """I(T; L) of the whole layer in bits (its rows weighted by ``sample_weight`` if given).

    Exact by enumerating the 2^m codes when 2^m * n <= ``max_terms`` (and m <= 20);
    otherwise a seeded Monte-Carlo average of KL(p(l | t) || p(l)) over ``samples``
    codes drawn from p(t), with p(l | t) evaluated exactly over all rows. Averaging the
    KL (the expectation over l given t) instead of log p(t | l_j) / p(t) for the sampled
    row's own label is a Rao-Blackwellisation: same mean, lower variance, never negative.
    """
    return conditional_flow_estimate(
        theta, labels, max_terms=max_terms, samples=samples, seed=seed, flows=False, sample_weight=sample_weight
    ).joint


def conditional_flows(
    theta, labels, *, max_terms: int = DEFAULT_MAX_TERMS, samples: int = DEFAULT_SAMPLES, seed: int = 0, sample_weight=None
) -> tuple[np.ndarray, InformationEstimate]:
    """Per neuron I(T_i; L | T_-i) = I(T; L) - I(T_-i; L) in bits, and the joint I(T; L),
    the rows weighted by ``sample_weight`` if given.

    The joint estimate is the one ``joint_information`` returns for the same arguments.
    """
    estimate = conditional_flow_estimate(
        theta, labels, max_terms=max_terms, samples=samples, seed=seed, sample_weight=sample_weight
    )
    return estimate.flows, estimate.joint


def conditional_flow_estimate(
    theta,
    labels,
    *,
    max_terms: int = DEFAULT_MAX_TERMS,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    flows: bool = True,
    sample_weight=None,
) -> FlowEstimate:
    """``conditional_flows`` with the standard error of each flow.

    On the Monte-Carlo path every leave-one-out term reuses the joint's sampled codes,
    so a flow's error is that of a difference of strongly correlated terms, far smaller
    than the joint's own. ``flows=False`` skips them (``flows`` is then empty).
    """
    mixture = _prepare(theta, labels, sample_weight)
    n, m = mixture.theta.shape
    if m == 0 or len(mixture.bounds) == 2:
        # No neurons, or a single label: there is nothing to know.
        joint = InformationEstimate(0.0, EXACT)
        return FlowEstimate(np.zeros(m if flows else 0), None, joint)
    if _use_exact(n, m, max_terms):
        log_mass = _exact_log_mass(mixture)
        bits = _information_from_log_mass(log_mass, mixture.log_prior, mixture.total).item()
        joint = InformationEstimate(bits, EXACT)
        if not flows:
            return FlowEstimate(np.zeros(0), None, joint)
        table = log_mass.reshape((2,) * m + (-1,))
        marginal = [
            _information_from_log_mass(
                torch.logsumexp(table, dim=i).reshape(2 ** (m - 1), -1), mixture.log_prior, mixture.total
            ).item()
            for i in range(m)
        ]
        return FlowEstimate(bits - np.asarray(marginal), None, joint)
    joint_terms, flow_terms = _monte_carlo(mixture, samples, seed, flows=flows)
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


def _plugin_entropy_nats(ids: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, int]:
    """Plug-in entropy of the empirical distribution of ``ids`` (its rows weighted by
    positive ``weights`` if given) and its support size."""
    _, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    masses = counts if weights is None else np.bincount(inverse.reshape(-1), weights=weights)
    p = masses / masses.sum()
    return float(-(p * np.log(p)).sum()), len(counts)


def effective_rows(weights: np.ndarray) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2: the number of equally weighted
    rows whose mean has the variance of the ``weights``-weighted mean; n for equal weights."""
    return float(weights.sum() ** 2 / np.square(weights).sum())


def plugin_information(codes, labels, sample_weight=None) -> InformationEstimate:
    """I(T; L) from counted codes (one sampled code per row) with the Miller-Madow
    correction, in bits; with ``sample_weight``, of the weighted counts.

    Each plug-in entropy underestimates by about (K - 1) / (2n) nats for K occupied
    cells, so I = H(T) + H(L) - H(T, L) overestimates by (K_tl - K_t - K_l + 1) / (2n);
    that is subtracted. The corrected figure can dip slightly below 0 and is not clipped
    (clipping would bias it up). With as many distinct codes as rows, as on a wide layer,
    it is still biased upwards: the third, biased figure of DESIGN §3.

    With weights, n in the correction is Kish's effective sample size of the weights
    (``effective_rows``), not their sum. The bias is the sampling noise of the counted
    codes, and a row drew one code whatever its weight: the weighted frequencies vary
    as a weighted mean of that many draws does. The sum would also make the correction
    depend on the weights' unit (weights of 0.01 would inflate it a hundredfold); the
    effective size is n for equal weights and ignores their scale. Hence integer
    weights give the uncorrected figure of the table with rows repeated, not its
    corrected one: repeating a row repeats its code, it draws no new ones. Rows of
    weight 0 are dropped (``samples`` counts the others).
    """
    codes = np.asarray(codes)
    n = codes.shape[0]
    if n == 0:
        raise ValueError("codes has no rows")
    code_ids = _code_ids(codes)
    label_ids, _ = _label_indices(labels, n)
    joint_ids = code_ids * (label_ids.max() + 1) + label_ids
    weights = checked_weights(sample_weight, n)
    if weights is not None:
        kept = weights > 0
        code_ids, label_ids, joint_ids, weights = code_ids[kept], label_ids[kept], joint_ids[kept], weights[kept]
    h_t, k_t = _plugin_entropy_nats(code_ids, weights)
    h_l, k_l = _plugin_entropy_nats(label_ids, weights)
    h_tl, k_tl = _plugin_entropy_nats(joint_ids, weights)
    plugin = h_t + h_l - h_tl
    rows = n if weights is None else effective_rows(weights)
    corrected = plugin - (k_tl - k_t - k_l + 1) / (2.0 * rows)
    return InformationEstimate(corrected / _LN2, PLUGIN, None, len(code_ids))


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


def _batch_masses(groups: torch.Tensor, n_groups: int, row_weights: torch.Tensor | None, dtype) -> tuple[torch.Tensor, float]:
    """Each group's mass in the batch (row count, or weight) and the batch's total."""
    if row_weights is None:
        return torch.bincount(groups, minlength=n_groups).to(dtype), float(groups.numel())
    masses = torch.zeros(n_groups, dtype=dtype, device=groups.device).index_add(0, groups, row_weights.to(dtype))
    return masses, float(row_weights.sum())


def _weighted_likelihood_terms(theta: torch.Tensor, row_weights: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """_likelihood_terms with log w_j added to row j's offset: the mixture's rows then
    weigh w_j each (the weights are positive: fit drops rows of weight 0)."""
    slope, offset = _likelihood_terms(theta)
    return slope, offset if row_weights is None else offset + torch.log(row_weights.to(theta.dtype))


def joint_mutual_information(
    theta: torch.Tensor, groups: torch.Tensor, n_groups: int, *, row_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Differentiable exact I(T; S) of a mini-batch in bits, enumerating all 2^m codes
    (the joint loss of DESIGN §2; time and memory grow as 2^m * batch), under the
    empirical distribution of the rows (weighted by ``row_weights`` if given).

    Groups absent from the batch drop out. Computed in theta's dtype and device.
    """
    theta = theta.clamp(_EPS, 1.0 - _EPS)
    n, m = theta.shape
    masses, total = _batch_masses(groups, n_groups, row_weights, theta.dtype)
    present = torch.nonzero(masses).flatten()
    if m == 0 or present.numel() < 2:
        return theta.sum() * 0.0  # keeps the graph (and a zero gradient) intact
    slope, offset = _weighted_likelihood_terms(theta, row_weights)
    log_w = torch.addmm(offset, _all_codes(m, dtype=theta.dtype, device=theta.device), slope.T)
    log_mass = _batch_group_log_mass(log_w, groups, present)
    log_prior = torch.log(masses[present] / total)
    return _information_from_log_mass(log_mass, log_prior, total)


def sampled_joint_mutual_information(
    theta: torch.Tensor,
    groups: torch.Tensor,
    n_groups: int,
    *,
    samples: int,
    generator: torch.Generator | None = None,
    row_weights: torch.Tensor | None = None,
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
    (DESIGN §2); its variance is what ``samples`` buys down. With ``row_weights`` the
    mixture weighs each row by its weight, and rows are drawn in proportion to it.
    """
    if samples < 2:
        raise ValueError(f"samples must be at least 2, got {samples}")
    theta = theta.clamp(_EPS, 1.0 - _EPS)
    n, m = theta.shape
    masses, total = _batch_masses(groups, n_groups, row_weights, theta.dtype)
    present = torch.nonzero(masses).flatten()
    if m == 0 or present.numel() < 2:
        zero = theta.sum() * 0.0
        return zero.detach(), zero
    if row_weights is None:
        rows = torch.randint(n, (samples,), generator=generator, device=theta.device)
    else:
        rows = torch.multinomial(row_weights.to(theta.dtype), samples, replacement=True, generator=generator)
    codes = torch.bernoulli(theta.detach()[rows], generator=generator)
    slope, offset = _weighted_likelihood_terms(theta, row_weights)
    log_w = torch.addmm(offset, codes, slope.T)  # log w_j p(t_k | x_j): (samples, n)
    log_mass = _batch_group_log_mass(log_w, groups, present)
    log_prior = torch.log(masses[present] / total)
    log_posterior = torch.log_softmax(log_mass, dim=1)
    f = (log_posterior.exp() * (log_posterior - log_prior)).sum(dim=1) / _LN2
    log_marginal = torch.logsumexp(log_mass, dim=1) - math.log(total)
    values = f.detach()
    baseline = (values.sum() - values) / (samples - 1)
    surrogate = (f + (values - baseline) * log_marginal).mean()
    return values.mean(), surrogate
