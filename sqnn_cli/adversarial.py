"""AdvCls: an adversary predicts S from the stochastic code; the encoder is trained against it.

The adversarial classifier of Xie, Dai, Du, Hovy and Neubig, *Controllable Invariance
through Adversarial Feature Learning* (NeurIPS 2017), on sqnn's network, so that the
representation audit reads it as it reads the other methods:

- encoder E: the feature layers and the stochastic binary layer; its output is the code
  T, the sampled bits, with the straight-through gradient the head gets;
- predictor M: the linear head, the logit of y from T;
- discriminator D: an MLP on T (one hidden layer of ``ADVERSARY_HIDDEN`` ReLU units)
  with a softmax over the ``n_groups`` values of S.

Losses, for a batch (weighted means when rows carry weights)::

    CE_D = mean_i -log D(s_i | t_i)                       D minimises it
    loss = (1 - gamma) * BCE(y, M(t)) - gamma * CE_D       E and M minimise it

With ``objective="separation"`` D also sees the label: its input is [t, y] and CE_D is
its cross-entropy of S given (T, Y). The best such D reaches H(S | T, Y), so maximising
its loss drives I(T;S|Y) = H(S|Y) - H(S|T,Y) towards 0: T independent of S within each
label, the representation-level form of equalized odds (DESIGN.md 5b). With the default
``"independence"`` D sees t alone and the same holds of I(T;S) = H(S) - H(S|T). H(S) - CE_D
is a lower bound of I, tight only for the best D: hence D's accuracy is reported.

Schedule: one simultaneous step through a gradient reversal. The adversary's gradient
with respect to the code is reversed and scaled by gamma on its way into the encoder,
while D's own parameters get the unscaled gradient of CE_D, and one Adam update moves
all of them. Why not alternating steps: they need a second pass through the network
per batch (E is updated against the D just updated), near twice the cost, and a second
optimiser state; the reversal takes, from one draw, the two gradients the alternating
updates would take before either is applied, fits the one ``FlatAdam`` update ``fit``
takes per batch, and keeps the step within 1.5 times bernoulli's. The step is written
without autograd (as ``training.closed_form_step`` is): the reversed gradient with
respect to the code is the ``d_theta`` that ``SQNNetwork.backpropagate`` takes, and D's
backward pass is four matrix products.

Departures from the paper and from DESIGN.md:

- Xie et al. alternate D's and the encoder's updates; here they are simultaneous
  (above). Their encoder minimises ``BCE - gamma * CE_D``; here ``(1 - gamma) * BCE -
  gamma * CE_D``, so that gamma is in [0, 1] as for every sqnn method (gamma = 0 is a
  plain classifier, gamma = 1 trains the encoder against D alone).
- D sees the sampled bits, not a deterministic hidden layer, so that the code the audit
  reads is the one D was trained on; D is always trained, even at gamma = 0, so its
  accuracy is a probe of how much of S the code carries.
- Xie et al.'s encoder is E(x, s); here S is never an input (as for the other methods,
  unless the user makes it a feature), so scoring never needs it.
- ``straight_through="identity"`` passes the code's gradient to the pre-activation,
  which ``backpropagate`` offers only for the head's path; that setting takes the same
  step through autograd with a gradient-reversal function (slower, same gradients).

FIGURES: "loss" (the encoder's objective above), "bce", "adversary_ce" (CE_D, nats) and
"adversary_accuracy" (the weighted share of rows whose S is D's most probable group).
"""

from __future__ import annotations

import torch
from torch import nn

from .model import GroupAwareNetwork, _grad_of

__all__ = ["AdversarialNetwork", "adversarial_step", "FIGURES", "ADVERSARY_HIDDEN"]

FIGURES = ("loss", "bce", "adversary_ce", "adversary_accuracy")
# D's one hidden layer. The audit's random forest finds S in interactions of bits (S = T1
# xor T2), which a linear D cannot see; 64 ReLU units, twice bernoulli's default code size, can
# represent many such interactions, and at 256 rows a batch cost little: a step took
# 1.24 times bernoulli's with 64 units, 1.21 with 32, 1.47 with 128 (adult-like sizes).
ADVERSARY_HIDDEN = 64


class AdversarialNetwork(GroupAwareNetwork):
    """SQNNetwork plus the discriminator ``adversary``: code t (and y, for separation)
    -> Linear -> ReLU -> Linear -> logits of S's ``n_groups`` groups."""

    def add_parts(self, n_features: int, hidden: list[int], code_size: int) -> None:
        adversary_inputs = code_size + (self.objective == "separation")
        self.adversary = nn.Sequential(
            nn.Linear(adversary_inputs, ADVERSARY_HIDDEN), nn.ReLU(), nn.Linear(ADVERSARY_HIDDEN, self.n_groups)
        )

    def adversary_inputs(self, code: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """What D reads: the code, with the label as one more column for separation."""
        if self.objective == "separation":
            return torch.cat([code, y.to(code.dtype).unsqueeze(1)], dim=1)
        return code


def adversarial_step(
    network: AdversarialNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    weights: torch.Tensor | None,
    *,
    gamma: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """Gradients of one batch written into every parameter's ``.grad``: E and M get those
    of ``(1 - gamma) * BCE - gamma * CE_D``, D those of ``CE_D``. Returns the batch's
    FIGURES."""
    if network.binary.straight_through == "sigmoid":
        return _closed_form_adversarial_step(network, x, y, groups, weights, gamma=gamma, generator=generator)
    return _autograd_adversarial_step(network, x, y, groups, weights, gamma=gamma, generator=generator)


def _row_scale(weights: torch.Tensor | None, n_rows: int) -> torch.Tensor | float:
    """Each row's share of a batch mean: 1/n, or w / sum(w) (a weighted mean)."""
    return 1.0 / n_rows if weights is None else weights / weights.sum()


def _weighted_mean(values: torch.Tensor, row_scale: torch.Tensor | float) -> torch.Tensor:
    return values.mean() if isinstance(row_scale, float) else torch.dot(values, row_scale)


def _figures(bce, adversary_ce, adversary_logits, groups, row_scale, gamma: float) -> torch.Tensor:
    hits = (adversary_logits.argmax(dim=1) == groups).to(adversary_logits.dtype)
    accuracy = _weighted_mean(hits, row_scale)
    return torch.stack([(1.0 - gamma) * bce - gamma * adversary_ce, bce, adversary_ce, accuracy]).detach()


# Inference mode, as in training.closed_form_step: nothing here is differentiated by autograd.
@torch.inference_mode()
def _closed_form_adversarial_step(network, x, y, groups, weights, *, gamma, generator) -> torch.Tensor:
    """adversarial_step for the sigmoid straight-through estimator, without autograd."""
    row_scale = _row_scale(weights, len(y))
    per_row = row_scale if isinstance(row_scale, float) else row_scale.unsqueeze(1)
    logits, cached = network.training_pass(x, generator)
    bce_rows = nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    d_logits = torch.sigmoid(logits).sub_(y).mul_(row_scale * (1.0 - gamma))

    first, _, last = network.adversary
    inputs = network.adversary_inputs(cached.bits, y)
    hidden = nn.functional.linear(inputs, first.weight, first.bias).relu_()
    adversary_logits = nn.functional.linear(hidden, last.weight, last.bias)
    log_probabilities = torch.log_softmax(adversary_logits, dim=1)
    group_column = groups.unsqueeze(1)
    log_likelihoods = log_probabilities.gather(1, group_column)
    # d CE_D / d logits of D: (softmax - one-hot of S) times each row's share; the entry
    # of S is its probability minus 1, exp(log p) - 1 without rounding away a small p.
    d_adversary = log_probabilities.exp_().scatter_(1, group_column, torch.expm1(log_likelihoods))
    d_adversary.mul_(per_row)
    torch.mm(d_adversary.t(), hidden, out=_grad_of(last.weight))
    torch.sum(d_adversary, dim=0, out=_grad_of(last.bias))
    d_hidden = torch.ops.aten.threshold_backward(d_adversary @ last.weight, hidden, 0)
    torch.mm(d_hidden.t(), inputs, out=_grad_of(first.weight))
    torch.sum(d_hidden, dim=0, out=_grad_of(first.bias))
    # The reversal: E climbs D's loss, scaled by gamma. Under the sigmoid estimator the
    # code passes as theta, so the code's gradient is the d_theta backpropagate takes.
    code_size = cached.bits.shape[1]
    d_theta = torch.mm(d_hidden, first.weight[:, :code_size]).mul_(-gamma)
    network.backpropagate(cached, d_logits, d_theta)
    bce, adversary_ce = _weighted_mean(bce_rows, row_scale), -_weighted_mean(log_likelihoods.squeeze(1), row_scale)
    return _figures(bce, adversary_ce, adversary_logits, groups, row_scale, gamma)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; backward multiplies the gradient by ``-scale``."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor, scale: float) -> torch.Tensor:
        ctx.scale = scale
        return tensor.view_as(tensor)

    @staticmethod
    def backward(ctx, grad_output: torch.Tensor):
        return grad_output * -ctx.scale, None


def _autograd_adversarial_step(network, x, y, groups, weights, *, gamma, generator) -> torch.Tensor:
    """adversarial_step through autograd: ``(1 - gamma) * BCE + CE_D`` differentiated with
    D reading the code through a reversal, which gives E ``-gamma`` times D's gradient."""
    for parameter in network.parameters():
        _grad_of(parameter).zero_()
    row_scale = _row_scale(weights, len(y))
    with torch.enable_grad():
        pre_activation, theta = network.encode(x)
        code = network.binary.sample(pre_activation, theta, generator)
        logits = network.head(code).squeeze(-1)
        bce = _weighted_mean(nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none"), row_scale)
        reversed_code = _ReverseGradient.apply(code, gamma)
        adversary_logits = network.adversary(network.adversary_inputs(reversed_code, y))
        adversary_ce = _weighted_mean(nn.functional.cross_entropy(adversary_logits, groups, reduction="none"), row_scale)
        ((1.0 - gamma) * bce + adversary_ce).backward()
    return _figures(bce, adversary_ce, adversary_logits.detach(), groups, row_scale, gamma)


# What the estimator reads of a baseline method's module (SQNNClassifier._baseline).
NETWORK = AdversarialNetwork
STEP = adversarial_step
