"""One optimisation step of SQNNClassifier.fit, and the Adam that takes it.

At 256 rows a batch, a step is some seventy small operations whose fixed costs weigh
about as much as their arithmetic. So the bernoulli loss, whose gradient has a closed form
(``bernoulli_information_and_gradient``), is trained without autograd, through the
network's hand-written backward pass: 1.7 times faster (benchmarks/step_profile.py).
The joint loss, which has no closed form, goes through autograd. Both fill the same
gradient buffer for one Adam update.
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from .information import InformationCells, bernoulli_information_and_gradient
from .model import SQNNetwork

__all__ = [
    "FlatAdam", "closed_form_step", "autograd_step", "weighted_bce", "InformationPenalty", "TrainingStep", "FIGURES",
]  # fmt: skip

# (theta, groups, y, weights, generator) -> (the information term of the batch, the term
# the loss differentiates)
InformationPenalty = Callable[..., tuple[torch.Tensor, torch.Tensor]]
# (network, x, y, groups, weights, *, generator) -> the batch's FIGURES, its gradients
# written into the parameters' .grad: closed_form_step, autograd_step or another method's
# step with their options bound. weights is None (rows weigh the same) or one per row.
TrainingStep = Callable[..., torch.Tensor]
# What the steps above return, in order: the objective, the label loss, the information term.
FIGURES = ("loss", "bce", "mi")


class FlatAdam:
    """torch.optim.Adam's update (no weight decay, no amsgrad) of all parameters at once.

    The parameters become views of one buffer and their gradients views of another, so
    a step is six operations whatever the network's depth. torch.optim.Adam, even fused,
    spent about 0.1 ms of Python per step (a sixth of a step) and, on first use, imports
    torch._dynamo: 1.1-1.5 s and 68 MiB for every ``sqnn train``.

    It works as a context manager: entering points the parameters into the buffers, and
    on exit each parameter gets storage of its own back and its gradient is dropped, so
    the network saves and trains on like any other.
    """

    def __init__(self, parameters: Iterable[torch.nn.Parameter], *, lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8):
        self.parameters = list(parameters)
        self.lr, self.betas, self.eps = float(lr), betas, float(eps)

    def __enter__(self) -> "FlatAdam":
        self.values = torch.cat([parameter.detach().reshape(-1) for parameter in self.parameters])
        self.grads = torch.zeros_like(self.values)
        self._exp_avg = torch.zeros_like(self.values)
        self._exp_avg_sq = torch.zeros_like(self.values)
        self._steps = 0
        offset = 0
        for parameter in self.parameters:
            size = parameter.numel()
            parameter.data = self.values[offset : offset + size].view_as(parameter)
            parameter.grad = self.grads[offset : offset + size].view_as(parameter)
            offset += size
        return self

    def __exit__(self, *exc_info) -> None:
        for parameter in self.parameters:
            parameter.data = parameter.data.clone()
            parameter.grad = None

    def zero_grad(self) -> None:
        self.grads.zero_()

    @torch.no_grad()
    def step(self) -> None:
        self._steps += 1
        beta1, beta2 = self.betas
        self._exp_avg.lerp_(self.grads, 1.0 - beta1)
        self._exp_avg_sq.mul_(beta2).addcmul_(self.grads, self.grads, value=1.0 - beta2)
        # lr m / (1 - beta1^t) / (sqrt(v / (1 - beta2^t)) + eps), with the bias corrections
        # moved onto the scalars (Kingma & Ba's Algorithm 1 note): one buffer-wide operation fewer.
        root_correction = math.sqrt(1.0 - beta2**self._steps)
        denominator = self._exp_avg_sq.sqrt().add_(self.eps * root_correction)
        self.values.addcdiv_(self._exp_avg, denominator, value=-self.lr * root_correction / (1.0 - beta1**self._steps))


def weighted_bce(logits: torch.Tensor, y: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    """The batch's binary cross-entropy: the mean over rows, or the weighted mean."""
    if weights is None:
        return torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    losses = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    return (losses * weights).sum() / weights.sum()


# Inference mode, unlike no_grad, also skips autograd's dispatch, about a microsecond on
# each of the step's operations; nothing here is differentiated by autograd.
@torch.inference_mode()
def closed_form_step(
    network: SQNNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    weights: torch.Tensor | None,
    *,
    gamma: float,
    cells: InformationCells,
    generator: torch.Generator,
) -> torch.Tensor:
    """Gradients of ``gamma * I + (1 - gamma) * BCE`` into the parameters' ``.grad``,
    without autograd, where I is the bernoulli loss of ``cells``' objective (sum_i I(T_i;S)
    or sum_i I(T_i;S|Y)); with ``weights``, every term is over the weighted rows.
    Returns the batch's FIGURES (loss, BCE, I) as a tensor."""
    membership = cells.membership(groups, y)
    logits, cached = network.training_pass(x, generator)
    bce = weighted_bce(logits, y, weights)
    d_logits = torch.sigmoid(logits).sub_(y)
    if weights is None:
        d_logits.mul_((1.0 - gamma) / len(y))
    else:
        d_logits.mul_(weights).mul_((1.0 - gamma) / float(weights.sum()))
    information, d_theta = bernoulli_information_and_gradient(
        cached.theta, membership, weight=gamma, signs=cells.signs, row_weights=weights
    )
    network.backpropagate(cached, d_logits, d_theta)
    return torch.stack([gamma * information + (1.0 - gamma) * bce, bce, information])


def autograd_step(
    network: SQNNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    weights: torch.Tensor | None,
    *,
    gamma: float,
    penalty: InformationPenalty,
    generator: torch.Generator,
) -> torch.Tensor:
    """Gradients of ``gamma * penalty + (1 - gamma) * BCE`` into the parameters' ``.grad``
    by autograd (which adds to them: they are zeroed first); returns FIGURES (loss, BCE, I)."""
    for parameter in network.parameters():
        parameter.grad.zero_()
    with torch.enable_grad():
        logits, theta = network(x, generator)
        bce = weighted_bce(logits, y, weights)
        information, objective = penalty(theta, groups, y, weights, generator)
        (gamma * objective + (1.0 - gamma) * bce).backward()
    return torch.stack([gamma * information + (1.0 - gamma) * bce, bce, information]).detach()
