"""The network: full-precision feature layers, one stochastic binary layer, a head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from . import defaults
from .errors import ParameterError

# The choices of the straight_through parameter, named for this module's readers.
STRAIGHT_THROUGH = defaults.STRAIGHT_THROUGH_CHOICES

__all__ = ["StochasticBinaryLayer", "SQNNetwork", "GroupAwareNetwork", "TrainingPass", "STRAIGHT_THROUGH"]


class StochasticBinaryLayer(nn.Module):
    """m Bernoulli neurons: theta = sigmoid(temperature * (W h + b)), t ~ Bernoulli(theta).

    The sample has no gradient, so a straight-through estimator passes one:
    ``sigmoid`` (default) differentiates through theta, ``identity`` through the
    pre-activation, as the paper's authors did.
    """

    def __init__(
        self,
        in_features: int,
        code_size: int,
        *,
        temperature: float = defaults.TEMPERATURE,
        straight_through: str = defaults.STRAIGHT_THROUGH,
    ):
        super().__init__()
        if straight_through not in STRAIGHT_THROUGH:
            raise ValueError(f"straight_through must be one of {STRAIGHT_THROUGH}, got {straight_through!r}")
        self.linear = nn.Linear(in_features, code_size)
        self.temperature = float(temperature)
        self.straight_through = straight_through

    def firing_probabilities(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre_activation = self.linear(h)
        if self.temperature != 1.0:  # one operation fewer per training step at the default
            pre_activation = self.temperature * pre_activation
        return pre_activation, torch.sigmoid(pre_activation)

    @staticmethod
    def draw(theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Bits t ~ Bernoulli(theta), without a gradient."""
        # u < theta with u uniform is a Bernoulli(theta) draw; on CPU it is several times
        # faster than torch.bernoulli, which samples element by element.
        uniform = torch.rand(theta.shape, generator=generator, device=theta.device, dtype=theta.dtype)
        return torch.lt(uniform, theta, out=uniform)  # comparisons carry no gradient

    def sample(self, pre_activation: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        bits = self.draw(theta, generator)
        surrogate = theta if self.straight_through == "sigmoid" else pre_activation
        return surrogate + (bits - surrogate).detach()


@dataclass(frozen=True)
class TrainingPass:
    """What :meth:`SQNNetwork.backpropagate` needs of a forward pass: the input of every
    Linear layer up to the binary layer's own (x, then each ReLU's output), theta, the
    bits."""

    layer_inputs: list[torch.Tensor]
    theta: torch.Tensor
    bits: torch.Tensor


class SQNNetwork(nn.Module):
    """x -> [Linear -> ReLU]* -> stochastic binary code t -> linear head -> logit of y."""

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        code_size: int,
        *,
        temperature: float = defaults.TEMPERATURE,
        straight_through: str = defaults.STRAIGHT_THROUGH,
    ):
        super().__init__()
        layers: list[nn.Module] = []
        width = n_features
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        self.features = nn.Sequential(*layers)
        self.binary = StochasticBinaryLayer(width, code_size, temperature=temperature, straight_through=straight_through)
        self.head = nn.Linear(code_size, 1)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pre-activations and firing probabilities theta of the binary layer."""
        return self.binary.firing_probabilities(self.features(x))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """One stochastic pass: the logit of p(y=1) per row and theta."""
        pre_activation, theta = self.encode(x)
        code = self.binary.sample(pre_activation, theta, generator)
        return self.head(code).squeeze(-1), theta

    # -- training without autograd ----------------------------------------------------
    # The network is a chain of Linear and ReLU layers, so its backward pass is a few
    # matrix products; written out, it skips autograd's graph and its dozens of small
    # operations per batch, which dominate a step at batch sizes of a few hundred rows.

    def _hidden_linears(self) -> list[nn.Linear]:
        # features is [Linear, ReLU]* by construction (__init__), which both passes rely on.
        return [layer for layer in self.features if isinstance(layer, nn.Linear)]

    @torch.no_grad()
    def training_pass(self, x: torch.Tensor, generator: torch.Generator | None) -> tuple[torch.Tensor, TrainingPass]:
        """forward()'s stochastic pass, with the same draws, untracked by autograd: the
        logits and what :meth:`backpropagate` needs (theta among it)."""
        layer_inputs = [x]
        for linear in self._hidden_linears():
            layer_inputs.append(nn.functional.linear(layer_inputs[-1], linear.weight, linear.bias).relu_())
        _, theta = self.binary.firing_probabilities(layer_inputs[-1])
        bits = self.binary.draw(theta, generator)
        logits = nn.functional.linear(bits, self.head.weight, self.head.bias).squeeze(-1)
        return logits, TrainingPass(layer_inputs, theta, bits)

    @torch.no_grad()
    def backpropagate(self, cached: TrainingPass, d_logits: torch.Tensor, d_theta: torch.Tensor) -> None:
        """Write into every parameter's ``.grad`` (overwritten, or allocated if missing) the
        gradient of a loss whose derivatives with respect to the logits and to theta are
        ``d_logits`` and ``d_theta``: what ``loss.backward()`` gives through forward()'s
        graph with its straight-through estimator. ``d_theta`` is consumed."""
        theta = cached.theta
        head_weight = self.head.weight[0]
        torch.mm(d_logits.unsqueeze(0), cached.bits, out=_grad_of(self.head.weight))
        torch.sum(d_logits, dim=0, keepdim=True, out=_grad_of(self.head.bias))
        # aten's sigmoid_backward(g, theta) is g * theta * (1 - theta) in one operation,
        # as autograd itself computes it; addr_ adds the head's outer product d_logits x w.
        if self.binary.straight_through == "sigmoid":  # the code passes as theta
            d_output = torch.ops.aten.sigmoid_backward(d_theta.addr_(d_logits, head_weight), theta)
        else:  # the code passes as the pre-activation
            d_output = torch.ops.aten.sigmoid_backward(d_theta, theta).addr_(d_logits, head_weight)
        if self.binary.temperature != 1.0:
            d_output.mul_(self.binary.temperature)

        linears = [*self._hidden_linears(), self.binary.linear]
        for index in reversed(range(len(linears))):
            inputs = cached.layer_inputs[index]
            torch.mm(d_output.t(), inputs, out=_grad_of(linears[index].weight))
            torch.sum(d_output, dim=0, out=_grad_of(linears[index].bias))
            if index:  # inputs is a ReLU's output, positive exactly where it let the gradient through
                d_output = torch.ops.aten.threshold_backward(d_output @ linears[index].weight, inputs, 0)


class GroupAwareNetwork(SQNNetwork):
    """SQNNetwork plus parts that read the group (an adversary, a decoder): the networks
    of the adversarial and vfae methods. A subclass adds its parts in :meth:`add_parts`."""

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        code_size: int,
        *,
        n_groups: int,
        temperature: float = defaults.TEMPERATURE,
        straight_through: str = defaults.STRAIGHT_THROUGH,
        objective: str = defaults.OBJECTIVE,
    ):
        if objective not in defaults.OBJECTIVES:
            choices = ", ".join(defaults.OBJECTIVES)
            raise ParameterError("{objective} must be one of {choices}, got {got!r}", choices=choices, got=objective)
        if n_groups < 1:
            raise ParameterError("{n_groups} must be at least 1, got {got}", got=n_groups)
        super().__init__(n_features, hidden, code_size, temperature=temperature, straight_through=straight_through)
        self.n_groups, self.objective = int(n_groups), objective
        self.add_parts(n_features, [int(units) for units in hidden], code_size)

    def add_parts(self, n_features: int, hidden: list[int], code_size: int) -> None:
        raise NotImplementedError


def _grad_of(parameter: nn.Parameter) -> torch.Tensor:
    """The parameter's ``.grad`` to write into, allocated (outside inference mode, so that
    autograd can add to it later) when it has none."""
    if parameter.grad is None:
        with torch.inference_mode(False):
            parameter.grad = torch.zeros_like(parameter)
    return parameter.grad
