"""The training step without autograd against autograd, and FlatAdam against torch's Adam."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from sqnn_cli.estimator import SQNNClassifier

from sqnn_cli.information import bernoulli_mutual_information, conditional_on_labels, information_cells
from sqnn_cli.model import SQNNetwork
from sqnn_cli.training import FlatAdam, autograd_step, closed_form_step

N_GROUPS = 3
CELLS = information_cells(N_GROUPS, dtype=torch.float64)


def batch(rows: int = 40, features: int = 6, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, features, generator=generator, dtype=torch.float64)
    y = (torch.rand(rows, generator=generator) < 0.4).double()
    # Group 2 never occurs: an absent group must not disturb either path.
    groups = torch.randint(0, N_GROUPS - 1, (rows,), generator=generator)
    return x, y, groups


def network(hidden, temperature: float, straight_through: str) -> SQNNetwork:
    # In float64 the two paths' different orders of summation stay far below the tolerance.
    torch.manual_seed(1)
    return SQNNetwork(6, hidden, 5, temperature=temperature, straight_through=straight_through).double()


def bernoulli_penalty(theta, groups, y, weights, generator):
    information = bernoulli_mutual_information(theta, groups, N_GROUPS)
    return information, information


def gradients(net: SQNNetwork, step, **options) -> tuple[torch.Tensor, list[torch.Tensor]]:
    for parameter in net.parameters():
        parameter.grad = torch.full_like(parameter, float("nan"))  # whatever was there goes
    terms = step(net, *batch(), None, generator=torch.Generator().manual_seed(7), **options)
    return terms, [parameter.grad.clone() for parameter in net.parameters()]


@pytest.mark.parametrize("hidden", [(), (8,), (8, 4)])
@pytest.mark.parametrize("temperature", [1.0, 2.5])
@pytest.mark.parametrize("straight_through", ["sigmoid", "identity"])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_closed_form_step_gives_autograds_gradients(hidden, temperature, straight_through, gamma):
    expected_terms, expected = gradients(
        network(hidden, temperature, straight_through), autograd_step, gamma=gamma, penalty=bernoulli_penalty
    )
    terms, actual = gradients(
        network(hidden, temperature, straight_through), closed_form_step, gamma=gamma, cells=CELLS
    )
    assert torch.allclose(terms, expected_terms, rtol=1e-12, atol=0)
    for got, want in zip(actual, expected):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-15)
    assert any(want.abs().max() > 1e-4 for want in expected)  # the comparison is not of zeros


def test_closed_form_step_allocates_missing_gradients():
    net = network((8,), 1.0, "sigmoid")
    closed_form_step(net, *batch(), None, gamma=0.3, cells=CELLS, generator=torch.Generator().manual_seed(7))
    assert all(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in net.parameters())


def row_weights(rows: int = 40, seed: int = 3) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(rows, generator=generator, dtype=torch.float64) * 3 + 0.1


def reference_penalty(objective: str):
    """The information term through autograd, as the formulas define it (no closed form)."""

    def independence(theta, groups, weights):
        information = bernoulli_mutual_information(theta, groups, N_GROUPS, row_weights=weights)
        return information, information

    def penalty(theta, groups, y, weights, generator):
        if objective == "separation":
            return conditional_on_labels(independence, theta, groups, y, weights)
        return independence(theta, groups, weights)

    return penalty


@pytest.mark.parametrize("objective", ["independence", "separation"])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("gamma", [0.0, 0.3, 1.0])
def test_closed_form_step_gives_autograds_gradients_for_weights_and_objectives(objective, weighted, gamma):
    weights = row_weights() if weighted else None
    cells = information_cells(N_GROUPS, objective, dtype=torch.float64)

    def weighted_gradients(step, **options):
        net = network((8, 4), 1.5, "sigmoid")
        for parameter in net.parameters():
            parameter.grad = torch.full_like(parameter, float("nan"))
        terms = step(net, *batch(), weights, generator=torch.Generator().manual_seed(7), **options)
        return terms, [parameter.grad.clone() for parameter in net.parameters()]

    expected_terms, expected = weighted_gradients(autograd_step, gamma=gamma, penalty=reference_penalty(objective))
    terms, actual = weighted_gradients(closed_form_step, gamma=gamma, cells=cells)
    assert torch.allclose(terms, expected_terms, rtol=1e-10, atol=0)
    for got, want in zip(actual, expected):
        assert torch.allclose(got, want, rtol=1e-9, atol=1e-15)
    assert any(want.abs().max() > 1e-4 for want in expected)


class AutogradSQNN(SQNNClassifier):
    """The same classifier, its bernoulli loss trained through autograd."""

    def _training_step(self, device):
        def penalty(theta, groups, y, weights, generator):
            information = bernoulli_mutual_information(theta, groups, len(self.groups_))
            return information, information

        return functools.partial(autograd_step, gamma=float(self.gamma), penalty=penalty)


@pytest.mark.parametrize("options", [{}, {"straight_through": "identity", "temperature": 2.0}])
def test_fit_in_closed_form_trains_the_model_autograd_trains(options):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1001, 5)).astype(np.float32)  # batches of 100 leave a last one of 1
    s = rng.integers(0, 3, size=1001)
    y = (x[:, 0] + s > 1).astype(int)
    settings = dict(gamma=0.6, hidden=(8,), code_size=4, epochs=3, batch_size=100, device="cpu", **options)
    closed, reference = (cls(**settings).fit(x, y, sensitive_features=s) for cls in (SQNNClassifier, AutogradSQNN))
    for ours, theirs in zip(closed.history_, reference.history_):
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-5)
    for got, want in zip(closed.network_.parameters(), reference.network_.parameters()):
        assert torch.allclose(got, want, atol=1e-5)


def test_flat_adam_takes_torch_adams_steps():
    torch.manual_seed(0)
    ours, reference = SQNNetwork(6, (8,), 5).double(), SQNNetwork(6, (8,), 5).double()
    reference.load_state_dict(ours.state_dict())
    torch_adam = torch.optim.Adam(reference.parameters(), lr=0.01, foreach=False)
    x, y, groups = batch()
    with FlatAdam(ours.parameters(), lr=0.01) as flat_adam:
        for step in range(5):
            for net in (ours, reference):
                generator = torch.Generator().manual_seed(step)
                logits, _ = net(x, generator)
                torch.nn.functional.binary_cross_entropy_with_logits(logits, y).backward()
            flat_adam.step()
            torch_adam.step()
            flat_adam.zero_grad()
            torch_adam.zero_grad()
    for got, want in zip(ours.parameters(), reference.parameters()):
        assert torch.allclose(got, want, rtol=1e-5, atol=1e-9)


def test_flat_adam_gives_the_parameters_back_on_exit():
    net = SQNNetwork(6, (8,), 5)
    before = [parameter.detach().clone() for parameter in net.parameters()]
    with FlatAdam(net.parameters(), lr=0.01) as flat_adam:
        assert all(parameter.grad is not None for parameter in net.parameters())
        flat_adam.values.add_(1.0)
    storages = {parameter.untyped_storage().data_ptr() for parameter in net.parameters()}
    assert len(storages) == len(before)  # each parameter its own storage again
    for parameter, old in zip(net.parameters(), before):
        assert parameter.grad is None and torch.equal(parameter.detach(), old + 1.0)
