"""The network: full-precision feature layers, one stochastic binary layer, a head."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

__all__ = ["StochasticBinaryLayer", "SQNNetwork", "STRAIGHT_THROUGH"]

STRAIGHT_THROUGH = ("sigmoid", "identity")


class StochasticBinaryLayer(nn.Module):
    """m Bernoulli neurons: theta = sigmoid(temperature * (W h + b)), t ~ Bernoulli(theta).

    The sample has no gradient, so a straight-through estimator passes one:
    ``sigmoid`` (default) differentiates through theta, ``identity`` through the
    pre-activation, as the paper's authors did.
    """

    def __init__(self, in_features: int, code_size: int, *, temperature: float = 1.0, straight_through: str = "sigmoid"):
        super().__init__()
        if straight_through not in STRAIGHT_THROUGH:
            raise ValueError(f"straight_through must be one of {STRAIGHT_THROUGH}, got {straight_through!r}")
        self.linear = nn.Linear(in_features, code_size)
        self.temperature = float(temperature)
        self.straight_through = straight_through

    def firing_probabilities(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pre_activation = self.temperature * self.linear(h)
        return pre_activation, torch.sigmoid(pre_activation)

    def sample(self, pre_activation: torch.Tensor, theta: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        # u < theta with u uniform is a Bernoulli(theta) draw; on CPU it is several times
        # faster than torch.bernoulli, which samples element by element.
        uniform = torch.rand(theta.shape, generator=generator, device=theta.device, dtype=theta.dtype)
        bits = (uniform < theta.detach()).to(theta.dtype)
        surrogate = theta if self.straight_through == "sigmoid" else pre_activation
        return surrogate + (bits - surrogate).detach()


class SQNNetwork(nn.Module):
    """x -> [Linear -> ReLU]* -> stochastic binary code t -> linear head -> logit of y."""

    def __init__(
        self,
        n_features: int,
        hidden: Sequence[int],
        code_size: int,
        *,
        temperature: float = 1.0,
        straight_through: str = "sigmoid",
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
