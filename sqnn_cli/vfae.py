"""The variational fair autoencoder (VFAE) of Louizos et al. 2016, on sqnn's stochastic layer.

Louizos, C.; Swersky, K.; Li, Y.; Welling, M.; and Zemel, R. 2016. The Variational Fair
Autoencoder. ICLR. As in Cerrato et al. 2023's comparison, the classifier reads z through
a stochastically quantized layer, so ``audit-representation`` reads the same object for
every method (DESIGN §5b).

The network (``VFAENetwork``)::

    x -> [Linear -> ReLU]* -> h -> Linear -> mu        (features: scoring reads mu)
                              h -> Linear -> log sigma^2   (log_variance)
    z = mu + sigma * eps, eps ~ N(0, I)                 (training only)
    z -> stochastic binary code t -> Linear -> logit of y   (binary, head)
    [z, one_hot(s)] -> [Linear -> ReLU]* -> Linear -> x_hat  (decoder, p(x | z, s))

The loss of a batch (each term a mean over its rows, weighted by the row weights if given)::

    loss = (1 - gamma) * BCE(y, head(t)) + gamma * MMD^2 + beta * (reconstruction + KL)
    reconstruction = 1/2 ||x - x_hat||^2            (Gaussian p(x | z, s), unit variance)
    KL = KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum_d (mu_d^2 + sigma_d^2 - log sigma_d^2 - 1)
    beta = 1 / n_features

MMD^2 (Gretton et al. 2012; the biased V-statistic of the batch) compares the groups'
posterior means mu with the Gaussian kernel k(a, b) = exp(-||a - b||^2 / D), D the mean
squared distance between two of the batch's rows (2 x the summed variance of mu's
coordinates; 2d under the prior N(0, I), d the latent size). The bandwidth follows the
batch, gradient included, so the penalty does not change when mu is scaled: a fixed
bandwidth let the encoder shrink the penalty by shrinking mu (the KL term, weighted by
beta, favours small mu too), and on COMPAS the MMD^2 then stayed near 1e-3 whatever gamma,
so gamma up to 0.5 changed nothing. For k groups, each group is compared with the rest
of the batch's rows and the penalty is the mean over the groups with rows on both sides,
weighted by their shares p(s) as I(T;S) = sum_s p(s) D(P(T|s) || P(T)) weights them (for
two groups, the plain two-sample MMD^2; a group with a row or two in a batch, whose
estimate is mostly its own kernel's bias, does not steer the batch); a group absent from
the batch drops out. With row weights, every mean above is the weighted one. The
separation objective (I(T;S|Y)'s form, DESIGN §5b) takes the MMD^2 within each label's
rows and weights it by the label's share p(y) (``information.conditional_on_labels``),
the kernel form of "z independent of S given Y". The schedule is one Adam step per batch on
the whole loss by autograd: nothing plays against anything, so no alternation is needed.
At adult-like sizes (100 features, hidden (64, 32), code 32, 256 rows, one thread) a step
took about 2.4 ms (2.8 for separation) against 0.44-0.6 ms for bernoulli's
closed_form_step and 0.95 ms for the plain network's autograd_step: the decoder doubles
the layers and the MMD^2 is a 256 x 256 kernel a batch.

Behaviour: the trade-off in gamma is steep. On COMPAS (sample_data/compas.csv, S = race,
defaults, 30% test rows) test AUC / DP difference were 0.72 / 0.24 at gamma 0, 0.62 / 0.19
at 0.05, 0.56 / 0.10 at 0.1 and 0.53 / 0.07 at 0.5 (bernoulli at 0.2: 0.71 / 0.24). The
paper saw the same of its VFAE (little correlation of gamma with AUC and 1-GPA).

Why gamma and beta combine so: gamma in [0, 1] trades the label loss against the
invariance penalty exactly as ``(1 - gamma) * BCE + gamma * I(T;S)`` does for bernoulli
and joint, so gamma means "how much of the objective is fairness" for every method; the
variational terms sit outside that trade with a fixed weight. beta = 1 / n_features makes
them the negative ELBO per input column: the BCE is one nat-scale term per row, while the
reconstruction grows with the table's width (a one-hot encoding of a wide table), so an
unscaled ELBO would drown the BCE and the MMD on wide tables and gamma would mean
something else on every table. gamma = 0 is therefore not a bare classifier: it is the
paper's "VAE" baseline, a classifier regularised by the autoencoder.

Departures from the paper and from DESIGN §5b, all deliberate:

- The encoder is q(z | x), not q(z | x, s): scoring never sees S. The decoder, used in
  training only, does get s, so the reconstruction need not keep S in z.
- Scoring reads the posterior mean: ``features`` ends with the Linear that outputs mu (no
  ReLU after it) and the log-variance is a separate Linear from the hidden activation
  before it, so ``encode(x)`` and ``rowwise.firing_probabilities`` (which walk
  ``features`` then ``binary.linear``) compute theta from mu exactly. Training samples
  z = mu + sigma * eps before the binary layer.
- The MMD is taken on mu, not on sampled z: the audit and the scores read theta(mu), so
  the penalty is on what they read, and extra noise in z cannot buy a smaller penalty.
  Tried on sampled z, on COMPAS the MMD^2 stayed at its noise floor (0.017) and the DP
  difference at 0.25-0.27 for every gamma from 0.05 to 0.5.
- Every feature is given a Gaussian (squared error) likelihood, the one-hot columns too
  (the features are standardized numbers and one-hot columns); a Bernoulli likelihood for
  the one-hot columns would need the encoding's column types in the network.
- The semi-supervised second latent layer (z2, and y as a latent for unlabelled rows) is
  left out: every training row has its label, and the classifier reads z1 = z directly.
- The paper weights the BCE by alpha and the MMD by beta with the ELBO at weight 1; here
  (1 - gamma), gamma and beta = 1 / n_features (above).
- The latent size is the last hidden width: the binary layer then reads a vector as wide
  as in the plain network at the same ``hidden``, and the mean layer is a linear
  bottleneck no wider than the layer before it. Without hidden layers it is the code size,
  since a latent as wide as the input would be no bottleneck.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .information import conditional_on_labels
from .model import GroupAwareNetwork, StochasticBinaryLayer
from .training import weighted_bce

__all__ = ["VFAENetwork", "FIGURES", "vfae_step", "vfae_figures", "group_mmd"]

# The smallest kernel bandwidth (squared distance) group_mmd uses: float32's rounding of
# the distances of z of about unit size is some 1e-7, well below it.
_MIN_BANDWIDTH = 1e-5
# The per-batch figures vfae_step returns, in order: the loss minimised, then its terms.
FIGURES = ("loss", "bce", "mmd", "reconstruction", "kl")


class VFAENetwork(GroupAwareNetwork):
    """x -> [Linear -> ReLU]* -> mu (features) -> stochastic binary code -> head, with the
    log-variance of z and the decoder p(x | z, s) as training-only submodules.

    ``forward`` and ``encode`` are the scoring passes (on mu); training goes through
    :func:`vfae_step`, which samples z.
    """

    def add_parts(self, n_features: int, hidden: list[int], code_size: int) -> None:
        trunk_width = hidden[-1] if hidden else n_features
        latent_size = hidden[-1] if hidden else code_size
        self.features.append(nn.Linear(trunk_width, latent_size))
        self.log_variance = nn.Linear(trunk_width, latent_size)
        binary = self.binary
        self.binary = StochasticBinaryLayer(latent_size, code_size, temperature=binary.temperature, straight_through=binary.straight_through)
        self.decoder = _decoder(latent_size + self.n_groups, hidden[::-1], n_features)
        self.latent_size = latent_size

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The mean and log-variance of q(z | x)."""
        hidden = x
        for layer in self.features[:-1]:
            hidden = layer(hidden)
        return self.features[-1](hidden), self.log_variance(hidden)

    def reconstruct(self, z: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        """The mean of p(x | z, s)."""
        group_columns = nn.functional.one_hot(groups, self.n_groups).to(z.dtype)
        return self.decoder(torch.cat([z, group_columns], dim=1))

    # The inherited closed-form pass assumes features ends with a ReLU; here it ends with mu.
    def training_pass(self, x, generator):
        raise NotImplementedError("VFAENetwork trains through vfae.vfae_step, not the closed-form pass")

    def backpropagate(self, cached, d_logits, d_theta):
        raise NotImplementedError("VFAENetwork trains through vfae.vfae_step, not the closed-form pass")


def _decoder(in_features: int, hidden: Sequence[int], n_features: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = in_features
    for units in hidden:
        layers += [nn.Linear(width, units), nn.ReLU()]
        width = units
    return nn.Sequential(*layers, nn.Linear(width, n_features))


def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return values.mean() if weights is None else (values * weights).sum() / weights.sum()


def group_mmd(
    z: torch.Tensor, groups: torch.Tensor, n_groups: int, row_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """MMD^2 between each group's z and the other rows' z (weighted empirical distributions),
    averaged over the groups that have rows on both sides with weights p(s); 0 when no
    group has. The Gaussian kernel's bandwidth follows the batch's spread (module docstring)."""
    mass = nn.functional.one_hot(groups, n_groups).to(z.dtype)  # (rows, groups)
    if row_weights is None:
        row_mass = z.new_full((len(z),), 1.0 / len(z))
    else:
        row_mass = row_weights.to(z.dtype) / row_weights.sum()
    mass = mass * row_mass.unsqueeze(1)
    rest = row_mass.unsqueeze(1) - mass  # exactly 0 on a group's own rows
    inside, outside = mass.sum(dim=0), rest.sum(dim=0)  # p(s), 1 - p(s)
    tiny = torch.finfo(z.dtype).tiny
    # MMD^2 = c' K c with c the difference of the two sides' row masses (each summing to 1).
    contrast = mass / inside.clamp_min(tiny) - rest / outside.clamp_min(tiny)
    # Distances do not change when z is shifted; centred, they lose the fewest digits.
    z = z - row_mass @ z
    squared_norms = z.pow(2).sum(dim=1)
    # Rounding can leave a distance a hair below 0; exp of it is a hair above 1, harmless,
    # so no clamp (whose backward pass cost two more batch x batch operations a step).
    distances = squared_norms.unsqueeze(1) + squared_norms.unsqueeze(0) - 2.0 * z @ z.t()
    # The mean squared distance between two rows: 2 * the summed variance of z's coordinates.
    mean_distance = 2.0 * (row_mass @ squared_norms)
    # When the batch's z all but coincide, its spread is rounding noise: dividing by it blew
    # a hair-negative distance up to exp(+huge) = inf (Bank, gamma 0.6, epoch 29). Below
    # _MIN_BANDWIDTH the rows are one point to the kernel, and the penalty is about 0.
    kernel = torch.exp(-distances / mean_distance.clamp_min(_MIN_BANDWIDTH))
    per_group = ((kernel @ contrast) * contrast).sum(dim=0)
    shares = inside * ((inside > 0) & (outside > 0)).to(z.dtype)
    return (per_group * shares).sum() / shares.sum().clamp_min(tiny)


def vfae_figures(
    network: VFAENetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    weights: torch.Tensor | None,
    *,
    gamma: float,
    noise: torch.Tensor,
    uniforms: torch.Tensor,
) -> torch.Tensor:
    """The batch's FIGURES (the loss first, differentiable) for given draws: ``noise``
    (rows, latent) standard normal for z, ``uniforms`` (rows, code) on [0, 1) for the bits."""
    mu, log_variance = network.posterior(x)
    z = mu + torch.exp(0.5 * log_variance) * noise
    pre_activation, theta = network.binary.firing_probabilities(z)
    bits = torch.lt(uniforms, theta).to(theta.dtype)  # StochasticBinaryLayer.draw, from given uniforms
    surrogate = theta if network.binary.straight_through == "sigmoid" else pre_activation
    logits = network.head(surrogate + (bits - surrogate).detach()).squeeze(-1)
    bce = weighted_bce(logits, y, weights)
    reconstruction = _mean(0.5 * (x - network.reconstruct(z, groups)).pow(2).sum(dim=1), weights)
    kl = _mean(0.5 * (mu.pow(2) + log_variance.exp() - log_variance - 1.0).sum(dim=1), weights)
    if network.objective == "separation":

        def within_label(means, label_groups, label_weights):
            return (group_mmd(means, label_groups, network.n_groups, label_weights),)

        (mmd,) = conditional_on_labels(within_label, mu, groups, y, weights)
    else:
        mmd = group_mmd(mu, groups, network.n_groups, weights)
    beta = 1.0 / x.shape[1]
    loss = (1.0 - gamma) * bce + gamma * mmd + beta * (reconstruction + kl)
    return torch.stack([loss, bce, mmd, reconstruction, kl])


def vfae_step(
    network: VFAENetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    weights: torch.Tensor | None = None,
    *,
    gamma: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """The gradients of the batch's loss (module docstring) written into every parameter's
    ``.grad`` by autograd; returns the batch's FIGURES, without a gradient."""
    for parameter in network.parameters():
        if parameter.grad is not None:
            parameter.grad.zero_()
    rows = len(x)
    noise = torch.randn((rows, network.latent_size), generator=generator, dtype=x.dtype, device=x.device)
    uniforms = torch.rand((rows, network.head.in_features), generator=generator, dtype=x.dtype, device=x.device)
    with torch.enable_grad():
        figures = vfae_figures(network, x, y, groups, weights, gamma=gamma, noise=noise, uniforms=uniforms)
        figures[0].backward()
    return figures.detach()


# What the estimator reads of a baseline method's module (SQNNClassifier._baseline).
NETWORK = VFAENetwork
STEP = vfae_step
