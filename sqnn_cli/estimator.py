"""The scikit-learn style classifier the CLI drives, and its training loop."""

from __future__ import annotations

import functools
import math
import threading
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array, check_is_fitted

from .errors import InputError, TrainingDivergedError
from .information import (
    bernoulli_mutual_information,
    group_indicators,
    joint_mutual_information,
    sampled_joint_mutual_information,
)
from .model import STRAIGHT_THROUGH, SQNNetwork
from .training import FlatAdam, TrainingStep, autograd_step, closed_form_step

__all__ = ["SQNNClassifier", "METHODS", "resolve_device", "TrainingDivergedError"]

METHODS = ("bernoulli", "joint")
# bernoulli's cost is linear in the code size; joint's exact loss enumerates 2^m codes
# per batch, so its default is a size where that stays exact and cheap.
DEFAULT_CODE_SIZE = {"bernoulli": 32, "joint": 8}
MAX_EXACT_JOINT_NEURONS = 12
MSG_JOINT_TOO_WIDE = (
    "--method joint computes I(T;S) exactly by enumerating 2^code_size codes per batch, which is "
    "limited to --code-size {limit} (got {size}); pass --joint-samples N (e.g. 256) for the "
    "Monte-Carlo estimate, or choose a smaller --code-size"
)
DEVICES = ("auto", "cpu", "cuda")
# Rows per chunk when scoring: bounds the (samples x rows x code) tensor of draws.
_SCORING_CHUNK = 8192
# Scoring draws from its own stream so that predictions do not depend on how long
# training ran or on what was scored before.
_SCORING_SEED_OFFSET = 1_000_003

# Seeding borrows torch's process-wide generator; models fitted concurrently in threads
# (a Dask worker with several threads) must take turns, or they would seed each other.
_GLOBAL_RNG_LOCK = threading.Lock()
_MSG_DIVERGED = "training diverged at epoch {epoch} (loss is {loss}); try a lower --lr or --temperature"

EpochCallback = Callable[[dict[str, float]], None]


def resolve_device(device: str) -> torch.device:
    if device not in DEVICES:
        raise InputError(f"device must be one of {DEVICES}, got {device!r}")
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was requested but no CUDA device is available")
    return torch.device(device)


class SQNNClassifier(ClassifierMixin, BaseEstimator):
    """A binary classifier whose stochastic binary layer is trained to forget S.

    The loss per mini-batch is ``gamma * I(T;S) + (1 - gamma) * BCE`` with I in bits,
    computed from the firing probabilities of the binary layer (DESIGN §2).

    Parameters
    ----------
    gamma : float in [0, 1]
        Weight of the information term; 0 trains a plain classifier.
    method : "bernoulli" or "joint"
        How I(T;S) is computed: ``bernoulli`` sums I(T_i;S) over the neurons (the paper's
        BinaryBernoulli); ``joint`` takes I(T;S) of the whole layer, which also sees
        information the neurons carry only together (DESIGN §2).
    hidden : sequence of int
        Widths of the full-precision feature layers before the binary layer.
    code_size : int or None
        Number of stochastic binary neurons; None takes 32 for bernoulli, 8 for joint.
    joint_samples : int or None
        joint only: None computes the batch's I(T;S) exactly by enumerating the 2^m
        codes (m <= 12); an int uses that many sampled codes per batch, an unbiased
        estimate with an unbiased (score-function plus pathwise) gradient.
    temperature : float
        theta = sigmoid(temperature * a).
    straight_through : "sigmoid" or "identity"
        Gradient surrogate for the sampled bits.
    epochs, batch_size, lr : training schedule (Adam).
    n_samples : int
        Monte-Carlo draws of the code averaged per score.
    random_state : int
        Seeds initialisation, shuffling, sampling and scoring.
    device : "auto", "cpu" or "cuda"
    warm_start : bool
        Continue training the fitted network instead of starting afresh (a new
        optimiser, the same weights), as in scikit-learn.
    """

    def __init__(
        self,
        gamma: float = 0.5,
        *,
        method: str = "bernoulli",
        hidden: Sequence[int] = (64, 64),
        code_size: int | None = None,
        joint_samples: int | None = None,
        temperature: float = 1.0,
        straight_through: str = "sigmoid",
        epochs: int = 30,
        batch_size: int = 256,
        lr: float = 1e-3,
        n_samples: int = 32,
        random_state: int = 0,
        device: str = "auto",
        warm_start: bool = False,
    ):
        self.gamma = gamma
        self.method = method
        self.hidden = hidden
        self.code_size = code_size
        self.joint_samples = joint_samples
        self.temperature = temperature
        self.straight_through = straight_through
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.n_samples = n_samples
        self.random_state = random_state
        self.device = device
        self.warm_start = warm_start

    # -- validation ------------------------------------------------------------------
    def _validate_params(self) -> None:
        checks = [
            (0.0 <= float(self.gamma) <= 1.0, f"gamma must be in [0, 1], got {self.gamma}"),
            (self.method in METHODS, f"method must be one of {METHODS}, got {self.method!r}"),
            (all(int(w) > 0 for w in self.hidden), f"hidden widths must be positive, got {list(self.hidden)}"),
            (self.code_size is None or int(self.code_size) > 0, f"code_size must be positive, got {self.code_size}"),
            (self.joint_samples is None or int(self.joint_samples) >= 2, f"joint_samples must be at least 2, got {self.joint_samples}"),
            (0 < float(self.temperature) < math.inf, f"temperature must be positive and finite, got {self.temperature}"),
            (self.straight_through in STRAIGHT_THROUGH, f"straight_through must be one of {STRAIGHT_THROUGH}"),
            (int(self.epochs) > 0, f"epochs must be positive, got {self.epochs}"),
            (int(self.batch_size) > 0, f"batch_size must be positive, got {self.batch_size}"),
            (0 < float(self.lr) < math.inf, f"lr must be positive and finite, got {self.lr}"),
            (int(self.n_samples) > 0, f"n_samples must be positive, got {self.n_samples}"),
            (isinstance(self.random_state, (int, np.integer)), "random_state must be an int"),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        if self.method == "joint" and self.joint_samples is None and self._code_size() > MAX_EXACT_JOINT_NEURONS:
            raise InputError(MSG_JOINT_TOO_WIDE.format(limit=MAX_EXACT_JOINT_NEURONS, size=self._code_size()))
        resolve_device(self.device)

    def _code_size(self) -> int:
        return int(self.code_size) if self.code_size is not None else DEFAULT_CODE_SIZE[self.method]

    def _build_network(self, n_features: int) -> SQNNetwork:
        return SQNNetwork(
            n_features,
            [int(w) for w in self.hidden],
            self._code_size(),
            temperature=float(self.temperature),
            straight_through=self.straight_through,
        )

    # -- training --------------------------------------------------------------------
    def fit(self, X, y, *, sensitive_features, epoch_callback: EpochCallback | None = None) -> "SQNNClassifier":
        """Train on features X, 0/1 labels y and one group label per row.

        ``epoch_callback`` receives each epoch's record (epoch, loss, bce, mi, seconds)
        as it finishes; it is how a caller shows progress without the core printing.
        """
        self._validate_params()
        X = check_array(X, dtype=np.float32)
        y = np.asarray(y)
        if y.shape != (X.shape[0],) or not np.isin(y, (0, 1)).all():
            raise ValueError("y must be a 1-D array of 0/1 labels, one per row of X")
        sensitive = np.asarray(sensitive_features)
        if sensitive.shape != (X.shape[0],):
            raise ValueError("sensitive_features must hold one group label per row of X")
        self.groups_, group_index = np.unique(sensitive.astype(str), return_inverse=True)

        device = resolve_device(self.device)
        seed = int(self.random_state)
        if self.warm_start and hasattr(self, "network_"):
            if X.shape[1] != self.n_features_in_:
                raise ValueError(f"X has {X.shape[1]} features, the model was trained on {self.n_features_in_}")
            network = self.network_.to(device)
        else:
            # Initialisation draws from torch's global generator; forking keeps the caller's
            # random state untouched while making the weights a function of the seed alone.
            with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                network = self._build_network(X.shape[1]).to(device)
        shuffle_generator = torch.Generator().manual_seed(seed)
        sample_generator = torch.Generator(device=device).manual_seed(seed)

        data = (
            torch.from_numpy(X).to(device),
            torch.from_numpy(y.astype(np.float32)).to(device),
            torch.from_numpy(group_index.astype(np.int64)).to(device),
        )
        n_rows, gamma = X.shape[0], float(self.gamma)
        step = self._training_step(device)

        self.history_: list[dict[str, float]] = []
        network.train()
        with FlatAdam(network.parameters(), lr=float(self.lr)) as optimizer:
            for epoch in range(1, int(self.epochs) + 1):
                started = time.perf_counter()
                order = torch.randperm(n_rows, generator=shuffle_generator).to(device)
                totals = self._train_epoch(network, optimizer, step, data, order, sample_generator, epoch)
                bce, mi = (totals / n_rows).tolist()
                loss = gamma * mi + (1.0 - gamma) * bce
                if not np.isfinite(loss):
                    raise TrainingDivergedError(_MSG_DIVERGED.format(epoch=epoch, loss=loss))
                record = {"epoch": epoch, "loss": loss, "bce": bce, "mi": mi, "seconds": time.perf_counter() - started}
                self.history_.append(record)
                if epoch_callback is not None:
                    epoch_callback(record)

        network.eval()
        self.network_ = network
        self.n_features_in_ = X.shape[1]
        self.classes_ = np.array([0, 1])
        return self

    def _train_epoch(
        self,
        network: SQNNetwork,
        optimizer: FlatAdam,
        step: TrainingStep,
        data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        order: torch.Tensor,
        generator: torch.Generator,
        epoch: int,
    ) -> torch.Tensor:
        """One pass over the rows of ``data`` (features, labels, groups) in ``order``, a
        step per batch; returns the row-weighted sums of the batches' (BCE, I)."""
        features, labels, groups = data
        totals = torch.zeros(2, device=features.device)
        batch_size = int(self.batch_size)
        try:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = (features.index_select(0, rows), labels.index_select(0, rows), groups.index_select(0, rows))
                totals.add_(step(network, *batch, generator=generator), alpha=len(rows))
                optimizer.step()
        except RuntimeError:
            # Blown-up weights give NaN firing probabilities, which torch.bernoulli (the
            # sampled joint estimator's draws) refuses before fit's end-of-epoch check sees
            # the loss.
            with torch.no_grad():
                _, theta = network.encode(batch[0])
            if torch.isfinite(theta).all():
                raise
            raise TrainingDivergedError(_MSG_DIVERGED.format(epoch=epoch, loss="nan")) from None
        return totals

    def _training_step(self, device: torch.device) -> TrainingStep:
        """The step for the chosen method: the bernoulli loss in closed form, the joint
        one through autograd (training.py)."""
        gamma = float(self.gamma)
        if self.method == "bernoulli":
            indicators = group_indicators(len(self.groups_), device=device)
            return functools.partial(closed_form_step, gamma=gamma, indicators=indicators)
        return functools.partial(autograd_step, gamma=gamma, penalty=self._information_penalty)

    def _information_penalty(
        self, theta: torch.Tensor, groups: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """I(T;S) of the batch in bits, as the chosen method defines it, and the term the
        loss differentiates (the same tensor, except for the sampled joint estimator,
        whose surrogate carries the score-function part of the gradient)."""
        n_groups = len(self.groups_)
        if self.method == "bernoulli":  # fit trains it in closed form; experiments use this
            mi = bernoulli_mutual_information(theta, groups, n_groups)
            return mi, mi
        if self.joint_samples is None:
            mi = joint_mutual_information(theta, groups, n_groups)
            return mi, mi
        return sampled_joint_mutual_information(
            theta, groups, n_groups, samples=int(self.joint_samples), generator=generator
        )

    # -- inference -------------------------------------------------------------------
    def _inputs(self, X) -> torch.Tensor:
        check_is_fitted(self, "network_")
        X = check_array(X, dtype=np.float32)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was trained on {self.n_features_in_}")
        return torch.from_numpy(X).to(self._device())

    def _device(self) -> torch.device:
        return next(self.network_.parameters()).device

    def _scoring_generator(self) -> torch.Generator:
        return torch.Generator(device=self._device()).manual_seed(int(self.random_state) + _SCORING_SEED_OFFSET)

    @torch.no_grad()
    def code_draws(self, X, *, n_samples: int | None = None) -> Iterator[torch.Tensor]:
        """The seeded code draws behind every score: (n_samples, rows, code_size) bit
        tensors, one per chunk of rows, in row order.

        Anything that rescores the same codes through an edited head (the audit's
        interventions) sees exactly the draws that ``predict_proba`` uses.
        """
        draws = int(n_samples if n_samples is not None else self.n_samples)
        if draws <= 0:
            raise ValueError(f"n_samples must be positive, got {draws}")
        features = self._inputs(X)
        generator = self._scoring_generator()
        for chunk in torch.split(features, _SCORING_CHUNK):
            _, theta = self.network_.encode(chunk)
            yield torch.bernoulli(theta.expand(draws, *theta.shape), generator=generator)

    @torch.no_grad()
    def predict_proba(self, X, *, n_samples: int | None = None) -> np.ndarray:
        """(n, 2) class probabilities: p(y=1) is the mean over ``n_samples`` code draws."""
        head = self.network_.head
        scores = [torch.sigmoid(head(bits).squeeze(-1)).mean(dim=0) for bits in self.code_draws(X, n_samples=n_samples)]
        positive = torch.cat(scores).double().cpu().numpy() if scores else np.zeros(0)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X, *, threshold: float = 0.5, n_samples: int | None = None) -> np.ndarray:
        return (self.predict_proba(X, n_samples=n_samples)[:, 1] >= threshold).astype(np.int64)

    @torch.no_grad()
    def firing_probabilities(self, X) -> np.ndarray:
        """theta: the (n, code_size) Bernoulli parameters of the binary layer."""
        features = self._inputs(X)
        thetas = [self.network_.encode(chunk)[1] for chunk in torch.split(features, _SCORING_CHUNK)]
        return torch.cat(thetas).cpu().numpy() if thetas else np.zeros((0, self._code_size()), np.float32)

    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """One sampled binary code per row, (n, code_size) uint8: the representation T."""
        theta = torch.from_numpy(self.firing_probabilities(X))
        generator = torch.Generator().manual_seed(int(self.random_state) + _SCORING_SEED_OFFSET)
        return torch.bernoulli(theta, generator=generator).to(torch.uint8).numpy()

    # -- plain-data state --------------------------------------------------------------
    def fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-ready description and the tensors of a fitted model."""
        check_is_fitted(self, "network_")
        params = self.get_params()
        params["hidden"] = [int(w) for w in self.hidden]
        description = {
            "params": params,
            "n_features_in": int(self.n_features_in_),
            "groups": [str(g) for g in self.groups_],
            "history": self.history_,
        }
        weights = {k: v.detach().cpu() for k, v in self.network_.state_dict().items()}
        return description, weights

    @classmethod
    def from_fitted_state(cls, description: dict[str, Any], weights: dict[str, torch.Tensor], *, device: str = "cpu") -> "SQNNClassifier":
        """Rebuild a fitted classifier from :meth:`fitted_state`'s output."""
        params = dict(description["params"])
        params["hidden"] = tuple(params["hidden"])
        params["device"] = device
        model = cls(**params)
        model._validate_params()
        network = model._build_network(int(description["n_features_in"]))
        network.load_state_dict(weights)
        network.to(resolve_device(device)).eval()
        model.network_ = network
        model.n_features_in_ = int(description["n_features_in"])
        model.groups_ = np.asarray(description["groups"])
        model.history_ = list(description.get("history", []))
        model.classes_ = np.array([0, 1])
        return model
