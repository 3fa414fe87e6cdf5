"""Many models of one table trained as one: the gammas of a sweep's fold in one pass.

The models of one fold of a sweep differ only in gamma. Alone, each starts from the
weights its seed gives, shuffles the rows in its seed's order and draws its bits from
uniforms its seed's generator gives, in the same shapes and order as every other. So
they can be trained together: their parameters stacked (a Linear's weight becomes
(models, out, in)), each step one batched matrix product per layer for all of them, one
draw of uniforms compared with every model's theta (so each model's bits are those it
would draw alone), and one FlatAdam over the stacked buffer, which, being elementwise,
is each model's own Adam. Where a batched operation would round otherwise than the lone
model's (its head's matrix-vector product, addr_'s fused multiply-add, the last elements
of a vectorised sigmoid), it is done the lone model's way, so on the machine this was
written on the models came out bit-identical to those trained one by one; another BLAS
may sum a batched product in another order, so tests/test_batched.py holds them within a
tolerance.

On one thread, a step of 11 models of the default size on Adult's 106 features took
3.8 ms against 0.9 ms for one model alone (some 63 GFLOP/s against 25): the batched
products keep a core busier than one model's small ones. The fitted models' scoring
shares its draws too (``positive_scores``).

Only the bernoulli method, whose step has a closed form (training.closed_form_step),
is batched; ``fit_gammas`` refuses the others (``UnbatchableMethodError``), and the
sweep trains those one by one.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from torch import nn

from .data import ColumnRoles, prepare
from .errors import ParameterError, TrainingDivergedError
from .estimator import MSG_DIVERGED, SQNNClassifier, TrainingData, limit_threads, resolve_device
from .fitted import FittedModel
from .information import InformationCells, bernoulli_information_and_gradient, information_cells
from .model import SQNNetwork, TrainingPass
from .pipeline import TrainingOutcome
from .preprocess import TabularEncoder
from .training import FIGURES, FlatAdam

__all__ = [
    "BATCHED_METHODS", "UnbatchableMethodError", "can_batch", "fit_gammas", "train_gammas", "positive_scores",
    "StackedNetwork", "stacked_step",
]  # fmt: skip

BATCHED_METHODS = ("bernoulli",)


class UnbatchableMethodError(ParameterError):
    """The estimator's method has no batched step; train its models one by one."""


def can_batch(estimator: SQNNClassifier) -> bool:
    """Whether ``fit_gammas`` trains models of this estimator's settings together."""
    return estimator.method in BATCHED_METHODS


class StackedNetwork:
    """``copies`` SQNNetworks of one shape as stacked parameters, trained together: the
    batched counterpart of SQNNetwork.training_pass and backpropagate. Every parameter is
    the network's own with a leading model axis: a Linear's weight (models, out, in), its
    bias (models, out)."""

    def __init__(self, network: SQNNetwork, copies: int):
        self.binary = network.binary
        self.linears = _layers(network)[:-1]
        self.weights = [_stacked(layer.weight, copies) for layer in _layers(network)]
        self.biases = [_stacked(layer.bias, copies) for layer in _layers(network)]

    def parameters(self) -> list[nn.Parameter]:
        return [*self.weights, *self.biases]

    def unstacked(self, network: SQNNetwork, index: int) -> SQNNetwork:
        """``network`` (of this stack's shape) given model ``index``'s parameters."""
        with torch.no_grad():
            for layer, weight, bias in zip(_layers(network), self.weights, self.biases):
                layer.weight.copy_(weight[index])
                layer.bias.copy_(bias[index])
        return network

    @torch.no_grad()
    def training_pass(self, x: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, TrainingPass]:
        """Every model's logits (models, n) and what ``backpropagate`` needs; one draw of
        uniforms (n, code) serves every model, as each would draw it alone."""
        layer_inputs = [x.expand(len(self.weights[0]), *x.shape)]
        for weight, bias in zip(self.weights[:-2], self.biases[:-2]):
            layer_inputs.append(torch.baddbmm(bias.unsqueeze(1), layer_inputs[-1], weight.transpose(1, 2)).relu_())
        pre_activation = torch.baddbmm(self.biases[-2].unsqueeze(1), layer_inputs[-1], self.weights[-2].transpose(1, 2))
        if self.binary.temperature != 1.0:
            pre_activation.mul_(self.binary.temperature)
        theta = pre_activation.sigmoid_()
        uniform = torch.rand(theta.shape[1:], generator=generator, device=theta.device, dtype=theta.dtype)
        bits = torch.gt(theta, uniform, out=torch.empty_like(theta))  # u < theta, as StochasticBinaryLayer.draw
        # The head has one output, which torch computes as a matrix-vector product: a
        # batched product would sum in another order, and one bit flipped by the last digit
        # of a logit's theta would part a model from its lone twin.
        logits = theta.new_empty(theta.shape[:2])
        for model, (code, weight, bias) in enumerate(zip(bits, self.weights[-1], self.biases[-1])):
            torch.addmv(bias, code, weight[0], out=logits[model])
        return logits, TrainingPass(layer_inputs, theta, bits)

    @torch.no_grad()
    def backpropagate(self, cached: TrainingPass, d_logits: torch.Tensor, d_theta: torch.Tensor) -> None:
        """SQNNetwork.backpropagate for every model at once: ``d_logits`` (models, n),
        ``d_theta`` (models, n, code), consumed."""
        torch.bmm(d_logits.unsqueeze(1), cached.bits, out=self.weights[-1].grad)
        torch.sum(d_logits, dim=1, keepdim=True, out=self.biases[-1].grad)
        # addcmul_ adds the head's outer products d_logits x w, rounded as SQNNetwork's addr_ rounds them.
        d_rows, head_weight = d_logits.unsqueeze(2), self.weights[-1]
        if self.binary.straight_through == "sigmoid":  # the code passes as theta
            d_output = torch.ops.aten.sigmoid_backward(d_theta.addcmul_(d_rows, head_weight), cached.theta)
        else:  # the code passes as the pre-activation
            d_output = torch.ops.aten.sigmoid_backward(d_theta, cached.theta).addcmul_(d_rows, head_weight)
        if self.binary.temperature != 1.0:
            d_output.mul_(self.binary.temperature)
        for index in reversed(range(len(self.linears))):
            inputs = cached.layer_inputs[index]
            torch.bmm(d_output.transpose(1, 2), inputs, out=self.weights[index].grad)
            torch.sum(d_output, dim=1, out=self.biases[index].grad)
            if index:  # inputs is a ReLU's output, positive exactly where it let the gradient through
                d_output = torch.ops.aten.threshold_backward(torch.bmm(d_output, self.weights[index]), inputs, 0)


def _layers(network: SQNNetwork) -> list[nn.Linear]:
    """The network's Linear layers in the order of the pass: features, binary layer, head."""
    return [*network._hidden_linears(), network.binary.linear, network.head]


def _stacked(parameter: torch.Tensor, copies: int) -> nn.Parameter:
    # FlatAdam points .data and .grad into its buffers.
    return nn.Parameter(parameter.detach().unsqueeze(0).repeat(copies, *([1] * parameter.dim())))


@torch.inference_mode()
def stacked_step(
    stack: StackedNetwork,
    x: torch.Tensor,
    y: torch.Tensor,
    groups: torch.Tensor,
    weights: torch.Tensor | None,
    *,
    gammas: Sequence[float],
    cells: InformationCells,
    generator: torch.Generator,
) -> torch.Tensor:
    """training.closed_form_step for every model of the stack, each at its own gamma:
    gradients into the stacked parameters' ``.grad``; returns each model's FIGURES,
    (models, 3)."""
    membership = cells.membership(groups, y)
    logits, cached = stack.training_pass(x, generator)
    losses = nn.functional.binary_cross_entropy_with_logits(logits, y.expand_as(logits), reduction="none")
    mass = float(len(y)) if weights is None else float(weights.sum())
    bce = losses.mean(dim=1) if weights is None else (losses * weights).sum(dim=1) / mass
    d_logits = _sigmoid_by_model(logits).sub_(y)
    if weights is not None:
        d_logits.mul_(weights)
    # Each model's factor in double, then float32, as closed_form_step's Python scalar.
    d_logits.mul_(_column([(1.0 - gamma) / mass for gamma in gammas], d_logits, 2))
    weight = _column(gammas, d_logits, 3, dtype=torch.float64)
    information, d_theta = bernoulli_information_and_gradient(
        cached.theta, membership, weight=weight, signs=cells.signs, row_weights=weights
    )
    stack.backpropagate(cached, d_logits, d_theta)
    gamma, keep = _column(gammas, bce, 1), _column([1.0 - gamma for gamma in gammas], bce, 1)
    return torch.stack([gamma * information + keep * bce, bce, information], dim=1)


def _sigmoid_by_model(logits: torch.Tensor) -> torch.Tensor:
    """sigmoid of each model's row on its own: torch's vector loop rounds the elements
    past the last full vector otherwise than the others, and a batch whose rows are not a
    multiple of its width would place them otherwise in the stack than alone."""
    probabilities = torch.empty_like(logits)
    for row, out in zip(logits, probabilities):
        torch.sigmoid(row, out=out)
    return probabilities


def _column(values: Sequence[float], like: torch.Tensor, dims: int, dtype: torch.dtype | None = None) -> torch.Tensor:
    """One value per model, shaped (models, 1, ...) to broadcast over ``dims`` axes."""
    column = torch.tensor(values, dtype=dtype or like.dtype, device=like.device)
    return column.reshape(-1, *([1] * (dims - 1)))


def fit_gammas(
    estimator: SQNNClassifier, gammas: Sequence[float], X, y, *, sensitive_features, sample_weight=None
) -> list[SQNNClassifier]:
    """One fitted copy of ``estimator`` per gamma, trained together: each equals
    ``clone(estimator).set_params(gamma=g).fit(X, y, ...)`` up to float rounding (the
    summation order of batched matrix products), with its own ``history_`` and threshold.

    Raises UnbatchableMethodError for a method other than bernoulli. An epoch's
    ``seconds`` in each history is that model's share of the batched epoch.
    """
    if not can_batch(estimator):
        raise UnbatchableMethodError(
            "{method} {got} cannot train several models in one pass (only {batched} can); train them one by one",
            got=estimator.method, batched=" and ".join(BATCHED_METHODS),
        )  # fmt: skip
    models = [clone(estimator).set_params(gamma=float(gamma)) for gamma in gammas]
    for model in models:
        model.check_params()
    if not models:
        return []
    with limit_threads(estimator.n_threads):
        return _fit_models(models, X, y, sensitive_features, sample_weight)


def _fit_models(models: list[SQNNClassifier], X, y, sensitive_features, sample_weight) -> list[SQNNClassifier]:
    prepared = [model._training_data(X, y, sensitive_features, sample_weight, warm=False) for model in models]
    X, y, group_index, weights = prepared[0]
    first, device = models[0], resolve_device(models[0].device)
    network = first._initial_network(X.shape[1], device)
    data = first._training_tensors(X, y, group_index, weights, device)
    stack = StackedNetwork(network, len(models))
    for model in models:
        model.history_ = []
    _train_stack(models, stack, data, device)
    for index, model in enumerate(models):
        model.network_ = stack.unstacked(first._initial_network(X.shape[1], device), index).eval()
    for model, scores in zip(models, positive_scores(models, X)):
        model._set_threshold(X, y, rows="the training rows", sample_weight=weights, scores=scores)
    return models


def positive_scores(models: Sequence[SQNNClassifier], X) -> list[np.ndarray]:
    """Each fitted model's p(y = classes_[1]) of X, as its ``predict_proba`` gives it, the
    uniforms behind the draws made once for all: they depend on the rows, the seed and
    the draws alone, which fit_gammas's models share. X is checked as scoring checks it."""
    X = models[0]._inputs(X)
    scores: list[list[torch.Tensor]] = [[] for _ in models]
    for chunk, uniforms in models[0]._uniform_chunks(X, None):
        for model, parts in zip(models, scores):
            parts.append(model._chunk_scores(chunk, uniforms))
    return [torch.cat(parts).cpu().numpy() if parts else np.zeros(0) for parts in scores]


def _train_stack(models: list[SQNNClassifier], stack: StackedNetwork, data: TrainingData, device: torch.device) -> None:
    """SQNNClassifier._train for the stacked models: the epochs, each recorded in every
    model's ``history_``."""
    first = models[0]
    seed, n_rows, batch_size = int(first.random_state), data.features.shape[0], int(first.batch_size)
    mass = n_rows if data.weights is None else float(data.weights.sum())
    shuffle_generator = torch.Generator().manual_seed(seed)
    sample_generator = torch.Generator(device=device).manual_seed(seed)
    cells = information_cells(len(first.groups_), first.objective, device=device)
    gammas = [float(model.gamma) for model in models]
    with FlatAdam(stack.parameters(), lr=float(first.lr)) as optimizer:
        for epoch in range(1, int(first.epochs) + 1):
            started = time.perf_counter()
            order = torch.randperm(n_rows, generator=shuffle_generator).to(device)
            totals = torch.zeros(len(models), len(FIGURES), device=device)
            for start in range(0, n_rows, batch_size):
                rows = order[start : start + batch_size]
                batch = [None if part is None else part.index_select(0, rows) for part in data]
                figures = stacked_step(stack, *batch, gammas=gammas, cells=cells, generator=sample_generator)
                totals.add_(figures, alpha=len(rows) if data.weights is None else float(batch[-1].sum()))
                optimizer.step()
            share = (time.perf_counter() - started) / len(models)
            for model, sums in zip(models, (totals / mass).tolist()):
                means = dict(zip(FIGURES, sums))
                if not np.isfinite(means["loss"]):
                    raise TrainingDivergedError(MSG_DIVERGED, epoch=epoch, loss=means["loss"])
                model.history_.append({"epoch": epoch, **means, "seconds": share})


def train_gammas(
    frame: pd.DataFrame,
    roles: ColumnRoles,
    estimator: SQNNClassifier,
    gammas: Sequence[float],
    *,
    drop_missing: bool = False,
    inf_as_missing: bool = False,
) -> list[TrainingOutcome]:
    """pipeline.train (without a held-out split) of one model per gamma, trained together
    by ``fit_gammas``: one encoder, fitted once, shared by every model. Each outcome's
    ``seconds`` is its share of the training."""
    data = prepare(frame, roles, drop_missing=drop_missing, inf_as_missing=inf_as_missing, for_training=True)
    encoder = TabularEncoder().fit(data.features)
    X, _ = encoder.transform(data.features)
    started = time.perf_counter()
    models = fit_gammas(estimator, gammas, X, data.y, sensitive_features=data.groups, sample_weight=data.weights)
    share = (time.perf_counter() - started) / max(1, len(models))
    return [
        TrainingOutcome(
            model=FittedModel(model, encoder, roles), rows_trained=len(data.y), rows_dropped=data.rows_dropped,
            seconds=share, test=None,
        )  # fmt: skip
        for model in models
    ]
