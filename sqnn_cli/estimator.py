"""The scikit-learn style classifier the CLI drives, and its training loop."""

from __future__ import annotations

import functools
import math
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_array, check_is_fitted

from .errors import InputError, TrainingDivergedError
from .limits import (
    MAX_BATCH_SIZE,
    MAX_CODE_SIZE,
    MAX_EPOCHS,
    MAX_HIDDEN_LAYERS,
    MAX_HIDDEN_WIDTH,
    MAX_JOINT_SAMPLES,
    MAX_SAMPLES,
    MAX_SEED,
    MAX_THREADS,
)
from .information import (
    bernoulli_mutual_information,
    group_indicators,
    joint_mutual_information,
    sampled_joint_mutual_information,
)
from . import rowwise
from .metrics import balanced_accuracy_threshold
from .model import STRAIGHT_THROUGH, SQNNetwork
from .training import FlatAdam, TrainingStep, autograd_step, closed_form_step

__all__ = ["SQNNClassifier", "METHODS", "resolve_device", "limit_threads", "TrainingDivergedError"]

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
# Scoring draws from its own stream so that predictions do not depend on how long
# training ran or on what was scored before.
_SCORING_SEED_OFFSET = 1_000_003
THRESHOLD_RULE = "maximises balanced accuracy of the mean score on {rows}"
LEGACY_THRESHOLD_RULE = "the fixed 0.5 of bundles written before sqnn chose thresholds"

# Seeding borrows torch's process-wide generator; models fitted concurrently in threads
# (a Dask worker with several threads) must take turns, or they would seed each other.
_GLOBAL_RNG_LOCK = threading.Lock()
_MSG_DIVERGED = "training diverged at epoch {epoch} (loss is {loss}); try a lower --lr or --temperature"

EpochCallback = Callable[[dict[str, float]], None]

# Networks this size do a step in a fraction of a millisecond: a second thread costs more
# in handing out work than it saves, and on a busy machine each extra thread waits for a
# core (benchmarks/threads.py; its figures are in benchmarks/RESULTS.md).
DEFAULT_THREADS = 1
_THREADS_LOCK = threading.Lock()
_open_thread_limits: list[int] = []
_threads_before: tuple[int, Any] | None = None
_pools: Any = None  # threadpoolctl's ThreadpoolController, made on first use


def _whole(value: Any, low: int, high: int) -> bool:
    """An integer (not a bool, not a float) in [low, high]."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool) and low <= value <= high


def _shown(value: Any) -> str:
    """A value for a one-line message: a crafted meta.json may hold a huge one."""
    try:
        text = repr(list(value) if isinstance(value, (tuple, np.ndarray)) else value)
    except ValueError:  # an int too long for Python to print
        return f"an integer of {value.bit_length()} bits"
    return text if len(text) <= 60 else text[:57] + "..."


def _positive_finite(value: Any) -> bool:
    real = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
    return real and 0 < value < math.inf


def _set_threads(n_threads: int) -> Any:
    """Torch's intra-op threads and the BLAS/OpenMP pools numpy and scikit-learn use; returns
    threadpoolctl's limiter, which knows the pools' previous sizes. Called under _THREADS_LOCK."""
    global _pools
    if _pools is None:
        from threadpoolctl import ThreadpoolController

        # Finding the loaded pools takes milliseconds (a scoring call's worth); limiting
        # them, microseconds. Those loaded with torch, numpy and scikit-learn are found.
        _pools = ThreadpoolController()
    limiter = _pools.limit(limits=n_threads)
    torch.set_num_threads(n_threads)
    return limiter


@contextmanager
def limit_threads(n_threads: int | None = None) -> Iterator[int]:
    """Run the block on ``n_threads`` threads (torch, BLAS, OpenMP), then give back the
    counts found on entry.

    None takes the count of an enclosing ``limit_threads`` block (the CLI's --threads
    wraps each command), else sqnn's default, DEFAULT_THREADS. The setting is
    process-wide, so blocks open at once in several threads (a Dask worker's) share it:
    the latest one opened sets it, and the last one to close restores the counts.
    """
    global _threads_before
    if n_threads is not None and not _whole(n_threads, 1, MAX_THREADS):
        raise InputError(f"n_threads must be an integer from 1 to {MAX_THREADS}, got {_shown(n_threads)}")
    with _THREADS_LOCK:
        if n_threads is None:
            n_threads = _open_thread_limits[-1] if _open_thread_limits else DEFAULT_THREADS
        if not _open_thread_limits:
            _threads_before = (torch.get_num_threads(), _set_threads(n_threads))
        elif n_threads != _open_thread_limits[-1]:
            _set_threads(n_threads)
        _open_thread_limits.append(n_threads)
    try:
        yield n_threads
    finally:
        with _THREADS_LOCK:
            _open_thread_limits.remove(n_threads)
            if _open_thread_limits:
                if _open_thread_limits[-1] != n_threads:
                    _set_threads(_open_thread_limits[-1])
            elif _threads_before is not None:
                torch_threads, limiter = _threads_before
                limiter.restore_original_limits()
                torch.set_num_threads(torch_threads)
                _threads_before = None


def _within_thread_limit(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an estimator method under ``limit_threads(self.n_threads)``."""

    @functools.wraps(method)
    def wrapper(self: "SQNNClassifier", *args: Any, **kwargs: Any) -> Any:
        with limit_threads(self.n_threads):
            return method(self, *args, **kwargs)

    return wrapper


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
    n_threads : int or None
        Threads (torch, BLAS, OpenMP) that fit and scoring use while they run; the
        previous counts come back afterwards. None: an enclosing ``limit_threads``
        block's count, else 1 (see ``limit_threads``). Results are bit-identical at
        equal thread counts only.
    """

    def __init__(
        self,
        gamma: float = 0.2,
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
        n_threads: int | None = None,
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
        self.n_threads = n_threads

    # -- validation ------------------------------------------------------------------
    def _check_params(self) -> None:
        """Refuse any setting out of its range (limits.py says why each bound) before
        anything is allocated: the CLI calls it before reading data, and the bundle loader
        to judge a meta.json's sizes before the network is built.

        Not named _validate_params: that is scikit-learn's own method."""
        hidden = self.hidden
        is_list = isinstance(hidden, (list, tuple, np.ndarray))
        too_deep = is_list and len(hidden) > MAX_HIDDEN_LAYERS
        hidden_ok = is_list and not too_deep and all(_whole(width, 1, MAX_HIDDEN_WIDTH) for width in hidden)
        shown_hidden = f"{len(hidden)} layers" if too_deep else _shown(hidden)
        checks = [
            (
                isinstance(self.gamma, (int, float, np.integer, np.floating)) and 0.0 <= self.gamma <= 1.0,
                f"gamma must be in [0, 1], got {_shown(self.gamma)}",
            ),
            (
                isinstance(self.method, str) and self.method in METHODS,
                f"method must be one of {METHODS}, got {_shown(self.method)}",
            ),
            (
                hidden_ok,
                f"hidden must be at most {MAX_HIDDEN_LAYERS} layer widths, each an integer from 1 to "
                f"{MAX_HIDDEN_WIDTH}, got {shown_hidden}",
            ),
            (
                self.code_size is None or _whole(self.code_size, 1, MAX_CODE_SIZE),
                f"code_size must be an integer from 1 to {MAX_CODE_SIZE}, got {_shown(self.code_size)}",
            ),
            (
                self.joint_samples is None or _whole(self.joint_samples, 2, MAX_JOINT_SAMPLES),
                f"joint_samples must be an integer from 2 to {MAX_JOINT_SAMPLES}, got {_shown(self.joint_samples)}",
            ),
            (_positive_finite(self.temperature), f"temperature must be positive and finite, got {_shown(self.temperature)}"),
            (
                isinstance(self.straight_through, str) and self.straight_through in STRAIGHT_THROUGH,
                f"straight_through must be one of {STRAIGHT_THROUGH}, got {_shown(self.straight_through)}",
            ),
            (
                _whole(self.epochs, 1, MAX_EPOCHS),
                f"epochs must be an integer from 1 to {MAX_EPOCHS}, got {_shown(self.epochs)}",
            ),
            (
                _whole(self.batch_size, 1, MAX_BATCH_SIZE),
                f"batch_size must be an integer from 1 to {MAX_BATCH_SIZE}, got {_shown(self.batch_size)}",
            ),
            (_positive_finite(self.lr), f"lr must be positive and finite, got {_shown(self.lr)}"),
            (
                _whole(self.n_samples, 1, MAX_SAMPLES),
                f"n_samples must be an integer from 1 to {MAX_SAMPLES}, got {_shown(self.n_samples)}",
            ),
            (
                _whole(self.random_state, 0, MAX_SEED),
                f"random_state must be an integer from 0 to {MAX_SEED}, got {_shown(self.random_state)}",
            ),
            (
                self.n_threads is None or _whole(self.n_threads, 1, MAX_THREADS),
                f"n_threads must be an integer from 1 to {MAX_THREADS}, got {_shown(self.n_threads)}",
            ),
            (
                isinstance(self.warm_start, (bool, np.bool_)),
                f"warm_start must be True or False, got {_shown(self.warm_start)}",
            ),
        ]
        for ok, message in checks:
            if not ok:
                raise InputError(message)
        if self.method == "joint" and self.joint_samples is None and self._code_size() > MAX_EXACT_JOINT_NEURONS:
            raise InputError(MSG_JOINT_TOO_WIDE.format(limit=MAX_EXACT_JOINT_NEURONS, size=self._code_size()))
        if not isinstance(self.device, str):
            raise InputError(f"device must be one of {DEVICES}, got {_shown(self.device)}")
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
    @_within_thread_limit
    def fit(self, X, y, *, sensitive_features, epoch_callback: EpochCallback | None = None) -> "SQNNClassifier":
        """Train on features X, 0/1 labels y and one group label per row.

        ``epoch_callback`` receives each epoch's record (epoch, loss, bce, mi, seconds)
        as it finishes; it is how a caller shows progress without the core printing.
        """
        self._check_params()
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
        # A cut at 0.5 assumes calibrated, balanced scores; on a table with a 0.9 base rate,
        # or a model pushed towards independence from S, it can put every row in one class.
        return self.choose_threshold(X, y, rows="the training rows")

    def choose_threshold(self, X, y, *, rows: str) -> "SQNNClassifier":
        """Set ``threshold_`` to the score cut that maximises balanced accuracy of the mean
        score on X, y; ``rows`` says which rows they are, for ``threshold_rule_``."""
        self.threshold_ = balanced_accuracy_threshold(y, self.predict_proba(X)[:, 1])
        self.threshold_rule_ = THRESHOLD_RULE.format(rows=rows)
        return self

    def decision_threshold(self, given: float | None = None) -> float:
        """The threshold in force: ``given`` if there is one, else the model's own."""
        check_is_fitted(self, "threshold_")
        return self.threshold_ if given is None else float(given)

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
    def _inputs(self, X) -> np.ndarray:
        check_is_fitted(self, "network_")
        X = check_array(X, dtype=np.float32)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, the model was trained on {self.n_features_in_}")
        # Row keys hash each row's bytes, and torch refuses negative strides (X[::-1]).
        return np.ascontiguousarray(X)

    def _device(self) -> torch.device:
        return next(self.network_.parameters()).device

    def _chunks(self, X: np.ndarray, draws: int) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Row chunks of X (a budget bounds the draws they carry) with their theta."""
        rows = rowwise.rows_per_chunk(draws, self._code_size())
        device = self._device()
        for start in range(0, X.shape[0], rows):
            chunk = X[start : start + rows]
            yield chunk, rowwise.firing_probabilities(self.network_, torch.from_numpy(chunk).to(device))

    @torch.no_grad()
    def code_draws(self, X, *, n_samples: int | None = None) -> Iterator[torch.Tensor]:
        """The seeded code draws behind every score: (n_samples, rows, code_size) bit
        tensors, one per chunk of rows, in row order.

        A row's draws are a function of the row and the seed alone (rowwise.py), so its
        score is the same in any order, subset or file. Anything that rescores the
        same codes through an edited head (the audit's interventions) sees exactly the
        draws that ``predict_proba`` uses.
        """
        draws = int(n_samples if n_samples is not None else self.n_samples)
        if draws <= 0:
            raise ValueError(f"n_samples must be positive, got {draws}")
        seed = int(self.random_state) + _SCORING_SEED_OFFSET
        for chunk, theta in self._chunks(self._inputs(X), draws):
            uniforms = rowwise.uniform_draws(rowwise.row_keys(chunk, seed), draws, theta.shape[1]).to(theta.device)
            yield (uniforms < theta).to(theta.dtype)

    @_within_thread_limit
    @torch.no_grad()
    def predict_proba(self, X, *, n_samples: int | None = None) -> np.ndarray:
        """(n, 2) class probabilities: p(y=1) is the mean over ``n_samples`` code draws."""
        head = self.network_.head
        scores = [rowwise.mean_probability(bits, head.weight, head.bias) for bits in self.code_draws(X, n_samples=n_samples)]
        positive = torch.cat(scores).cpu().numpy() if scores else np.zeros(0)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X, *, threshold: float | None = None, n_samples: int | None = None) -> np.ndarray:
        """0/1 predictions at ``threshold``, by default the one chosen in training (``threshold_``)."""
        cut = self.decision_threshold(threshold)
        return (self.predict_proba(X, n_samples=n_samples)[:, 1] >= cut).astype(np.int64)

    @_within_thread_limit
    @torch.no_grad()
    def firing_probabilities(self, X) -> np.ndarray:
        """theta: the (n, code_size) Bernoulli parameters of the binary layer."""
        thetas = [theta for _, theta in self._chunks(self._inputs(X), 1)]
        return torch.cat(thetas).cpu().numpy() if thetas else np.zeros((0, self._code_size()), np.float32)

    @_within_thread_limit
    @torch.no_grad()
    def transform(self, X) -> np.ndarray:
        """One sampled binary code per row, (n, code_size) uint8: the representation T
        (the first of the draws that scoring uses)."""
        codes = [bits[0].to(torch.uint8).cpu() for bits in self.code_draws(X, n_samples=1)]
        return torch.cat(codes).numpy() if codes else np.zeros((0, self._code_size()), np.uint8)

    # -- plain-data state --------------------------------------------------------------
    def fitted_state(self) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
        """JSON-ready description and the tensors of a fitted model."""
        check_is_fitted(self, "network_")
        params = self.get_params()
        params["hidden"] = [int(w) for w in self.hidden]
        # Threads belong to the machine that runs a model, not to the model.
        params.pop("n_threads")
        description = {
            "params": params,
            "n_features_in": int(self.n_features_in_),
            "groups": [str(g) for g in self.groups_],
            "history": self.history_,
            "decision_threshold": {"value": float(self.threshold_), "rule": self.threshold_rule_},
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
        model._check_params()
        network = model._build_network(int(description["n_features_in"]))
        network.load_state_dict(weights)
        network.to(resolve_device(device)).eval()
        model.network_ = network
        model.n_features_in_ = int(description["n_features_in"])
        model.groups_ = np.asarray(description["groups"])
        model.history_ = list(description.get("history", []))
        # Bundles written before thresholds were chosen in training cut at 0.5.
        chosen = description.get("decision_threshold") or {"value": 0.5, "rule": LEGACY_THRESHOLD_RULE}
        model.threshold_, model.threshold_rule_ = float(chosen["value"]), str(chosen["rule"])
        model.classes_ = np.array([0, 1])
        return model
