"""Entropies and mutual information of the stochastic binary layer, in bits.

The layer's neurons are Bernoulli variables with firing probabilities theta, so the
information they carry about a discrete attribute is computed exactly from theta, not
estimated from samples (DESIGN §2).
"""

from __future__ import annotations

import math

import torch

__all__ = ["binary_entropy", "group_means", "bernoulli_mutual_information"]

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
