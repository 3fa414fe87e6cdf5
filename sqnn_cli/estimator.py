"""The scikit-learn style classifier the CLI drives, and its training loop."""

from __future__ import annotations

import functools
import importlib
import math
import threading
import time
import warnings
from contextlib import contextmanager
from numbers import Integral, Real
from typing import Any, Callable, Iterator, NamedTuple, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils._param_validation import InvalidParameterError, Interval, StrOptions, make_constraint
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, column_or_1d, validate_data

from . import defaults
from .errors import ParameterError, TrainingDivergedError
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
    conditional_on_labels,
    information_cells,
    joint_mutual_information,
    sampled_joint_mutual_information,
)
from . import rowwise
from .metrics import balanced_accuracy_threshold
from .model import SQNNetwork
from .training import FIGURES, FlatAdam, TrainingStep, autograd_step, closed_form_step

__all__ = [
    "SQNNClassifier", "ParameterConstraintError", "resolve_device", "limit_threads", "TrainingDivergedError",
]  # fmt: skip

# Scoring draws from its own stream so that predictions do not depend on how long
# training ran or on what was scored before.
_SCORING_SEED_OFFSET = 1_000_003
THRESHOLD_RULE = "maximises balanced accuracy of the mean score on {rows}"
LEGACY_THRESHOLD_RULE = "the fixed 0.5 of bundles written before sqnn chose thresholds"
# The group of every row when fit is given no sensitive_features.
ONE_GROUP = "all rows"
# Bundles written before labels were kept: the CLI has always trained on 0/1.
LEGACY_CLASSES = (0, 1)

# Seeding borrows torch's process-wide generator; models fitted concurrently in threads
# (a Dask worker with several threads) must take turns, or they would seed each other.
_GLOBAL_RNG_LOCK = threading.Lock()
MSG_DIVERGED = "training diverged at epoch {epoch} (loss is {loss}); try a lower {lr} or {temperature}"

EpochCallback = Callable[[dict[str, float]], None]

# Networks this size do a step in a fraction of a millisecond: a second thread costs more
# in handing out work than it saves, and on a busy machine each extra thread waits for a
# core (benchmarks/threads.py; its figures are in benchmarks/RESULTS.md).
DEFAULT_THREADS = 1
_THREADS_LOCK = threading.Lock()
_open_thread_limits: list[int] = []
_threads_before: tuple[int, Any] | None = None
_pools: Any = None  # threadpoolctl's ThreadpoolController, made on first use


class TrainingData(NamedTuple):
    """The training rows as tensors on the training device; weights None when the rows
    weigh the same."""

    features: torch.Tensor
    labels: torch.Tensor
    groups: torch.Tensor
    weights: torch.Tensor | None


class _WholeRows:
    """The rows of fit, all in memory: an epoch visits them in one permutation."""

    def __init__(self, data: TrainingData):
        self.data = data
        self.mass = data.features.shape[0] if data.weights is None else float(data.weights.sum())

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[TrainingData, torch.Tensor]]:
        order = torch.randperm(self.data.features.shape[0], generator=generator)
        yield self.data, order.to(self.data.features.device)


class _BlockRows:
    """The rows of fit_blocks: features read a block at a time, the labels, group indices and
    training weights (float32, as _training_weights makes them) of every row in memory.

    An epoch visits the blocks in a random order and each block's rows in a random order
    of their own: not one permutation of all rows, but every batch is still rows drawn
    from one block, and the loss is a mean over each batch (I(T;S) is a per-batch term),
    so its meaning is unchanged. A single block draws no block order, so its epochs are
    fit's exactly."""

    def __init__(self, blocks: Any, labels: np.ndarray, groups: np.ndarray, weights: np.ndarray | None, device: torch.device):
        self.blocks, self.labels, self.groups, self.weights, self.device = blocks, labels, groups, weights, device
        self.mass = len(labels) if weights is None else float(torch.from_numpy(weights).sum())

    def epoch(self, generator: torch.Generator) -> Iterator[tuple[TrainingData, torch.Tensor]]:
        count = self.blocks.n_blocks
        visits = [0] if count == 1 else torch.randperm(count, generator=generator).tolist()
        for index in visits:
            features = self.blocks.block(index)
            rows = slice(index * self.blocks.block_rows, index * self.blocks.block_rows + len(features))
            data = TrainingData(
                torch.from_numpy(features).to(self.device),
                torch.from_numpy(self.labels[rows]).to(self.device),
                torch.from_numpy(self.groups[rows].astype(np.int64)).to(self.device),
                None if self.weights is None else torch.from_numpy(self.weights[rows]).to(self.device),
            )
            yield data, torch.randperm(len(features), generator=generator).to(self.device)


RowSource = _WholeRows | _BlockRows


class ParameterConstraintError(ParameterError, InvalidParameterError):
    """A parameter outside its declared constraints: scikit-learn's own exception type (what
    its tools and checks expect) that a front end words with its names, as any ParameterError."""


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


def _counts(n: int, what: str) -> str:
    return f"{n} {what}" if n == 1 else f"{n} {what}es" if what.endswith("s") else f"{n} {what}s"


def _training_weights(weights: np.ndarray) -> np.ndarray:
    """Positive float64 weights as the float32 the training step reads: divided by their
    mean (every term of the loss is a weighted mean, so only their ratios count), which
    keeps a table's largest weight below its row count however large the raw weights, and
    kept above float32's smallest normal number, so that no row of positive weight becomes
    0 (a batch of such rows would weigh nothing)."""
    scaled = weights / weights.mean()
    return np.maximum(scaled, np.finfo(np.float32).tiny).astype(np.float32)


def _binary_classes(y: np.ndarray, *, weighted: bool) -> np.ndarray:
    """The two classes of y, sorted; anything but two is refused."""
    check_classification_targets(y)
    classes = np.unique(y)
    if classes.size != 2:
        raise ValueError(
            "Only binary classification is supported. y must hold exactly two classes"
            f"{' of positive weight' if weighted else ''}; "
            f"it holds {_counts(classes.size, 'class')}: {_shown(classes)}"
        )
    return classes


def _whole_between(low: int, high: int) -> Interval:
    return Interval(Integral, low, high, closed="both")


_POSITIVE_FINITE = Interval(Real, 0, math.inf, closed="neither")


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
        raise ParameterError(
            "{n_threads} must be an integer from 1 to {limit}, got {got}", limit=MAX_THREADS, got=_shown(n_threads)
        )
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
    """The torch device a ``device`` parameter names: 'auto' is CUDA where there is one."""
    if not isinstance(device, str) or device not in defaults.DEVICES:
        raise ParameterError("{device} must be one of {choices}, got {got}", choices=defaults.DEVICES, got=_shown(device))
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ParameterError("{device} 'cuda' was requested but no CUDA device is available; choose 'auto' or 'cpu'")
    return torch.device(device)


class SQNNClassifier(ClassifierMixin, BaseEstimator):
    """A binary classifier whose stochastic binary layer is trained to forget S.

    The loss per mini-batch is ``gamma * I(T;S) + (1 - gamma) * BCE`` with I in bits,
    computed from the firing probabilities of the binary layer (DESIGN §2).

    ``y`` may hold any two labels: ``classes_`` are they, sorted, and ``classes_[1]`` is
    the positive class whose probability is ``predict_proba(X)[:, 1]``.

    ``fit(X, y)`` without ``sensitive_features`` puts every row in one group, so I(T;S)
    is 0 and the model is a plain classifier trained on ``(1 - gamma) * BCE``; with
    ``gamma > 0`` fit warns (UserWarning) that nothing is forgotten. That is how
    scikit-learn's tools, which know nothing of groups, call it (cross-validation
    without routed metadata, ``check_estimator``).

    Parameters
    ----------
    gamma : float in [0, 1]
        Weight of the information term; 0 trains a plain classifier.
    method : "bernoulli" or "joint"
        How I(T;S) is computed: ``bernoulli`` sums I(T_i;S) over the neurons (the paper's
        BinaryBernoulli); ``joint`` takes I(T;S) of the whole layer, which also sees
        information the neurons carry only together (DESIGN §2).
    objective : "independence" or "separation"
        What T is made to forget: ``independence`` minimises I(T;S), the representation
        form of demographic parity; ``separation`` minimises I(T;S|Y) =
        sum_y p(y) I(T;S | Y=y), the representation form of equalized odds, which also
        drives GPA to 0 (DESIGN §5b).
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

    Every parameter is checked against ``_parameter_constraints`` (bounds from limits.py)
    and the rules that tie parameters together when ``fit`` starts, or without data by
    :meth:`check_params`; a refusal is a ``ValueError`` naming the parameter.
    """

    _parameter_constraints: dict = {
        "gamma": [Interval(Real, 0, 1, closed="both")],
        "method": [StrOptions(set(defaults.METHODS))],
        "objective": [StrOptions(set(defaults.OBJECTIVES))],
        # Its depth and widths: _check_hidden, which words them as one rule.
        "hidden": ["array-like"],
        "code_size": [_whole_between(1, MAX_CODE_SIZE), None],
        "joint_samples": [_whole_between(2, MAX_JOINT_SAMPLES), None],
        "temperature": [_POSITIVE_FINITE],
        "straight_through": [StrOptions(set(defaults.STRAIGHT_THROUGH_CHOICES))],
        "epochs": [_whole_between(1, MAX_EPOCHS)],
        "batch_size": [_whole_between(1, MAX_BATCH_SIZE)],
        "lr": [_POSITIVE_FINITE],
        "n_samples": [_whole_between(1, MAX_SAMPLES)],
        "random_state": [_whole_between(0, MAX_SEED)],
        "device": [StrOptions(set(defaults.DEVICES))],
        "warm_start": ["boolean"],
        "n_threads": [_whole_between(1, MAX_THREADS), None],
    }

    def __init__(
        self,
        gamma: float = defaults.GAMMA,
        *,
        method: str = defaults.METHOD,
        objective: str = defaults.OBJECTIVE,
        hidden: Sequence[int] = defaults.HIDDEN,
        code_size: int | None = None,
        joint_samples: int | None = None,
        temperature: float = defaults.TEMPERATURE,
        straight_through: str = defaults.STRAIGHT_THROUGH,
        epochs: int = defaults.EPOCHS,
        batch_size: int = defaults.BATCH_SIZE,
        lr: float = defaults.LR,
        n_samples: int = defaults.N_SAMPLES,
        random_state: int = defaults.RANDOM_STATE,
        device: str = defaults.DEVICE,
        warm_start: bool = False,
        n_threads: int | None = None,
    ):
        self.gamma = gamma
        self.method = method
        self.objective = objective
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

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    # -- validation ------------------------------------------------------------------
    def check_params(self) -> None:
        """Refuse, without any data, every setting ``fit`` would refuse: each parameter
        against its constraints (``_parameter_constraints``; limits.py says why each
        bound), then the rules that tie parameters together (joint's exact enumeration
        is limited to ``MAX_EXACT_JOINT_NEURONS`` neurons unless ``joint_samples``;
        ``joint_samples`` is for ``method="joint"`` only; ``device="cuda"`` needs a GPU).

        Raises ``ParameterError`` (a ``ValueError``) naming the parameters; a parameter
        outside its constraints raises ``ParameterConstraintError``, which is also
        scikit-learn's ``InvalidParameterError``. Nothing is allocated, so the CLI calls
        it before reading data and the bundle loader before building a meta.json's network.
        """
        try:
            self._validate_params()  # scikit-learn's, from _parameter_constraints
        except ValueError:
            # scikit-learn writes the whole value into its message (a crafted meta.json
            # may hold 100,000 widths) or fails to (an int of 5,000 digits): say it briefly.
            refusal = self._constraint_refusal()
            if refusal is None:
                raise
            raise refusal from None
        self._check_hidden()
        self._check_combinations()

    def _constraint_refusal(self) -> ParameterConstraintError | None:
        """The refusal of the first parameter outside its constraints, if any."""
        for name, declared in self._parameter_constraints.items():
            constraints = [make_constraint(constraint) for constraint in declared]
            value = getattr(self, name)
            if not any(constraint.is_satisfied_by(value) for constraint in constraints):
                described = [str(constraint) for constraint in constraints]
                must = described[0] if len(described) == 1 else f"{', '.join(described[:-1])} or {described[-1]}"
                return ParameterConstraintError(
                    f"The '{{{name}}}' parameter of {type(self).__name__} must be {{must}}. Got {{got}} instead.",
                    must=must, got=_shown(value),
                )  # fmt: skip
        return None

    def _check_hidden(self) -> None:
        hidden = self.hidden
        is_list = isinstance(hidden, (list, tuple, np.ndarray))
        too_deep = is_list and len(hidden) > MAX_HIDDEN_LAYERS
        if not is_list or too_deep or not all(_whole(width, 1, MAX_HIDDEN_WIDTH) for width in hidden):
            raise ParameterError(
                "{hidden} must be at most {layers} layer widths, each an integer from 1 to {width}, got {got}",
                layers=MAX_HIDDEN_LAYERS, width=MAX_HIDDEN_WIDTH,
                got=_counts(len(hidden), "layer") if too_deep else _shown(hidden),
            )  # fmt: skip

    def _check_combinations(self) -> None:
        if self.joint_samples is not None and self.method != "joint":
            raise ParameterError("{joint_samples} applies to {method} joint only")
        if self.method == "joint" and self.joint_samples is None and self._code_size() > defaults.MAX_EXACT_JOINT_NEURONS:
            raise ParameterError(
                "{method} joint computes I(T;S) exactly by enumerating the 2^m codes of an m-neuron layer per "
                "batch, which is limited to {code_size} {limit} (got {size}); pass {joint_samples} N (e.g. 256) "
                "for the Monte-Carlo estimate, or choose a smaller {code_size}",
                limit=defaults.MAX_EXACT_JOINT_NEURONS, size=self._code_size(),
            )  # fmt: skip
        resolve_device(self.device)

    def _code_size(self) -> int:
        return int(self.code_size) if self.code_size is not None else defaults.CODE_SIZE[self.method]

    def _build_network(self, n_features: int, n_groups: int) -> SQNNetwork:
        """The method's network: SQNNetwork, or it with the adversary or the VFAE's
        encoder and decoder (which need the number of groups)."""
        layers = (n_features, [int(w) for w in self.hidden], self._code_size())
        options = dict(temperature=float(self.temperature), straight_through=self.straight_through)
        baseline = self._baseline()
        if baseline is not None:
            return baseline.NETWORK(*layers, n_groups=n_groups, objective=self.objective, **options)
        return SQNNetwork(*layers, **options)

    def _baseline(self) -> Any:
        """The module of a method that brings its own network, step and figures (the
        paper's baselines: adversarial.py, vfae.py), imported on first use; None for
        bernoulli and joint, whose information terms this class computes."""
        if self.method in defaults.BASELINE_METHODS:
            return importlib.import_module(f"{__package__}.{self.method}")
        return None

    def network_shapes(self, n_features: int, n_groups: int) -> dict[str, tuple[int, ...]]:
        """The state_dict names and shapes of the network these parameters describe,
        found on torch's meta device, which allocates nothing."""
        with torch.device("meta"):
            network = self._build_network(n_features, n_groups)
        return {name: tuple(tensor.shape) for name, tensor in network.state_dict().items()}

    # -- training --------------------------------------------------------------------
    def fit(
        self, X, y, *, sensitive_features=None, sample_weight=None, epoch_callback: EpochCallback | None = None
    ) -> "SQNNClassifier":
        """Train on features X, two-class labels y and one group label per row.

        ``sensitive_features=None`` puts every row in one group (see the class docstring).
        ``sample_weight`` (one non-negative, finite weight per row) weighs each row in every
        term of the loss (the weighted BCE, and I(T;S) under the weighted distribution of
        the rows) and in the choice of the threshold, as if a row of weight k were k rows.
        Rows of weight 0 are left out; equal weights train exactly what no weights train.
        ``epoch_callback`` receives each epoch's record (epoch, loss, bce, mi, seconds)
        as it finishes; it is how a caller shows progress without the core printing.
        """
        self.check_params()  # n_threads among them, before limit_threads takes it
        with limit_threads(self.n_threads):
            return self._fit(X, y, sensitive_features, sample_weight, epoch_callback)

    def fit_blocks(
        self, blocks: Any, y, *, group_codes, groups, sample_weight=None, epoch_callback: EpochCallback | None = None
    ) -> "SQNNClassifier":
        """:meth:`fit` on rows too many to hold in memory: their features in ``blocks``, read a
        block at a time, and what is small of each row in arrays.

        ``blocks`` has ``n_features``, ``block_rows``, ``n_blocks`` and ``block(index)``: the
        float32, C-contiguous features of rows ``index * block_rows`` onwards (at most
        ``block_rows``; the array may be reused by the next call), as encoded_cache.EncodedCache
        gives them. ``y`` holds two classes; row i is in group ``groups[group_codes[i]]``;
        ``groups`` are distinct and sorted. ``sample_weight``, if given, is positive (leave rows
        of weight 0 out of ``blocks``). Epochs visit the blocks in a seeded random order and
        each block's rows in a random order (_BlockRows); with a single block, fit on the same
        rows trains the same model. The threshold is chosen on every row's score, scored a
        block at a time; warm_start is not supported.
        """
        self.check_params()
        if self.warm_start:
            raise ParameterError("{warm_start} is not supported by fit_blocks; train afresh")
        with limit_threads(self.n_threads):
            self.classes_ = _binary_classes(y, weighted=sample_weight is not None)
            self.groups_ = np.asarray(groups, dtype=str)
            self.n_features_in_ = int(blocks.n_features)
            weights = None if sample_weight is None or np.all(sample_weight == sample_weight[0]) else sample_weight
            self.network_ = self._trained_from_blocks(blocks, y, group_codes, weights, epoch_callback)
            scores = self._block_scores(blocks, len(y))
            # The whole-table rule, in a few bytes a row rather than some ninety (ranked_threshold).
            from .ranked_threshold import ranked_balanced_accuracy_threshold

            self.threshold_ = ranked_balanced_accuracy_threshold(np.asarray(y) == self.classes_[1], scores, weights)
            self.threshold_rule_ = THRESHOLD_RULE.format(rows="the training rows")
            return self

    def _trained_from_blocks(
        self, blocks: Any, y, group_codes: np.ndarray, weights: np.ndarray | None, epoch_callback: EpochCallback | None
    ) -> SQNNetwork:
        """fit_blocks' network, trained; what training holds of each row is let go on return,
        before the threshold's scoring pass needs its own arrays."""
        device = resolve_device(self.device)
        network = self._initial_network(self.n_features_in_, device)
        positive = (np.asarray(y) == self.classes_[1]).astype(np.float32)
        training_weights = None if weights is None else _training_weights(weights)
        self.history_ = []
        self._train(network, _BlockRows(blocks, positive, group_codes, training_weights, device), device, epoch_callback)
        return network.eval()

    def _block_scores(self, blocks: Any, rows: int) -> np.ndarray:
        """p(classes_[1]) of every row of ``blocks``, scored a block at a time into one array."""
        scores = None
        for index in range(blocks.n_blocks):
            block = self._positive_scores(blocks.block(index))
            scores = np.empty(rows, dtype=block.dtype) if scores is None else scores
            scores[index * blocks.block_rows : index * blocks.block_rows + len(block)] = block
        return scores

    def _fit(self, X, y, sensitive_features, sample_weight, epoch_callback: EpochCallback | None) -> "SQNNClassifier":
        warm = bool(self.warm_start) and hasattr(self, "network_")
        X, y, group_index, weights = self._training_data(X, y, sensitive_features, sample_weight, warm=warm)
        device = resolve_device(self.device)
        network = self.network_.to(device) if warm else self._initial_network(X.shape[1], device)
        data = self._training_tensors(X, y, group_index, weights, device)
        self.history_: list[dict[str, float]] = []
        self._train(network, _WholeRows(data), device, epoch_callback)
        network.eval()
        self.network_ = network
        # A cut at 0.5 assumes calibrated, balanced scores; on a table with a 0.9 base rate,
        # or a model pushed towards independence from S, it can put every row in one class.
        return self._set_threshold(X, y, rows="the training rows", sample_weight=weights)

    def _training_tensors(
        self, X: np.ndarray, y: np.ndarray, group_index: np.ndarray, weights: np.ndarray | None, device: torch.device
    ) -> TrainingData:
        """What ``_training_data`` returns, as the tensors the training step reads (also
        batched.py's, which trains several models on them)."""
        return TrainingData(
            torch.from_numpy(X).to(device),
            torch.from_numpy(self._positive(y).astype(np.float32)).to(device),
            torch.from_numpy(group_index.astype(np.int64)).to(device),
            None if weights is None else torch.from_numpy(_training_weights(weights)).to(device),
        )

    def _training_data(
        self, X, y, sensitive_features, sample_weight, *, warm: bool
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """X (float32, C-contiguous), y and the weights checked as scikit-learn checks them,
        with ``classes_``, ``groups_`` and each row's group index set; rows of weight 0
        are left out, and weights that are all equal come back as None (they weigh nothing)."""
        X, y = validate_data(self, X, y, dtype=np.float32, reset=not warm)
        sensitive = self._group_labels(sensitive_features, X.shape[0])
        weights = None
        if sample_weight is not None:
            weights = _check_sample_weight(sample_weight, X, dtype=np.float64, ensure_non_negative=True)
            kept = weights > 0
            X, y, sensitive, weights = X[kept], column_or_1d(y)[kept], sensitive[kept], weights[kept]
            if np.all(weights == weights[0]):
                weights = None
        classes = _binary_classes(y, weighted=sample_weight is not None)
        if warm and not np.array_equal(classes, self.classes_):
            raise ValueError(f"y holds the classes {_shown(classes)}; the model was trained on {_shown(self.classes_)}")
        self.classes_ = classes
        self.groups_, group_index = np.unique(sensitive.astype(str), return_inverse=True)
        # Row keys hash each row's bytes, and torch refuses negative strides (X[::-1]).
        return np.ascontiguousarray(X), y, group_index, weights

    def _group_labels(self, sensitive_features, n_rows: int) -> np.ndarray:
        """One group label per row; every row in one group when there are none."""
        if sensitive_features is None:
            if self.gamma > 0:
                warnings.warn(
                    "sensitive_features is None: every row is in one group, so I(T;S) is 0 and "
                    f"the model is a plain classifier trained on (1 - gamma) * BCE (gamma={self.gamma})",
                    UserWarning,
                    stacklevel=5,  # the caller of fit
                )
            return np.full(n_rows, ONE_GROUP)
        sensitive = np.asarray(sensitive_features)
        if sensitive.shape != (n_rows,):
            raise ValueError("sensitive_features must hold one group label per row of X")
        # A missing label would silently become a group named "nan" or "None".
        missing = pd.isna(sensitive)
        if missing.any():
            raise ValueError(f"sensitive_features is missing for {int(missing.sum())} row(s); give every row a group")
        return sensitive

    def _initial_network(self, n_features: int, device: torch.device) -> SQNNetwork:
        # Initialisation draws from torch's global generator; forking keeps the caller's
        # random state untouched while making the weights a function of the seed alone.
        with _GLOBAL_RNG_LOCK, torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(self.random_state))
            return self._build_network(n_features, len(self.groups_)).to(device)

    def _train(
        self, network: SQNNetwork, source: "RowSource", device: torch.device, epoch_callback: EpochCallback | None
    ) -> None:
        """The epochs of training, each recorded in ``history_`` and passed to ``epoch_callback``."""
        seed = int(self.random_state)
        shuffle_generator = torch.Generator().manual_seed(seed)
        sample_generator = torch.Generator(device=device).manual_seed(seed)
        step, figures = self._training_step(device), self._figures()
        network.train()
        with FlatAdam(network.parameters(), lr=float(self.lr)) as optimizer:
            for epoch in range(1, int(self.epochs) + 1):
                started = time.perf_counter()
                totals = None
                for data, order in source.epoch(shuffle_generator):
                    part = self._train_epoch(network, optimizer, step, data, order, sample_generator, epoch)
                    totals = part if totals is None else totals.add_(part)
                means = dict(zip(figures, (totals / source.mass).tolist()))
                if not np.isfinite(means["loss"]):
                    raise TrainingDivergedError(MSG_DIVERGED, epoch=epoch, loss=means["loss"])
                record = {"epoch": epoch, **means, "seconds": time.perf_counter() - started}
                self.history_.append(record)
                if epoch_callback is not None:
                    epoch_callback(record)

    def _positive(self, y) -> np.ndarray:
        """1 where y is the positive class ``classes_[1]``, else 0; a label outside
        ``classes_`` is refused."""
        y = column_or_1d(y)
        unknown = ~np.isin(y, self.classes_)
        if unknown.any():
            raise ValueError(
                f"y holds labels the model was not trained on ({_shown(np.unique(y[unknown]))}); "
                f"its classes are {_shown(self.classes_)}"
            )
        return (y == self.classes_[1]).astype(np.int64)

    def choose_threshold(self, X, y, *, rows: str, sample_weight=None) -> "SQNNClassifier":
        """Set ``threshold_`` to the score cut that maximises balanced accuracy of the mean
        score on X, y (labels from ``classes_``), weighted by ``sample_weight`` if given;
        ``rows`` says which rows they are, for ``threshold_rule_``."""
        check_is_fitted(self, "network_")
        with limit_threads(self.n_threads):
            return self._set_threshold(self._inputs(X), y, rows=rows, sample_weight=sample_weight)

    def _set_threshold(
        self, X: np.ndarray, y, *, rows: str, sample_weight: np.ndarray | None = None, scores: np.ndarray | None = None
    ) -> "SQNNClassifier":
        """choose_threshold for an X already checked by _inputs (whose ``scores``, if the
        caller has them: batched.py scores several models at once)."""
        scores = self._positive_scores(X) if scores is None else scores
        self.threshold_ = balanced_accuracy_threshold(self._positive(y), scores, sample_weight=sample_weight)
        self.threshold_rule_ = THRESHOLD_RULE.format(rows=rows)
        return self

    def decision_threshold(self, given: float | None = None) -> float:
        """The threshold in force: ``given`` if there is one, else the model's own."""
        check_is_fitted(self, "threshold_")
        if given is None:
            return self.threshold_
        if not (isinstance(given, (int, float, np.integer, np.floating)) and 0.0 <= given <= 1.0):
            raise ParameterError("{threshold} must be a number in [0, 1], got {got}", got=_shown(given))
        return float(given)

    def _train_epoch(
        self,
        network: SQNNetwork,
        optimizer: FlatAdam,
        step: TrainingStep,
        data: TrainingData,
        order: torch.Tensor,
        generator: torch.Generator,
        epoch: int,
    ) -> torch.Tensor:
        """One pass over the rows of ``data`` in ``order``, a step per batch; returns the
        sums of the batches' figures, each batch weighing its rows (or their weight)."""
        totals = None
        batch_size = int(self.batch_size)
        try:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = [None if part is None else part.index_select(0, rows) for part in data]
                figures = step(network, *batch, generator=generator)
                mass = len(rows) if data.weights is None else float(batch[-1].sum())
                totals = figures * mass if totals is None else totals.add_(figures, alpha=mass)
                optimizer.step()
        except RuntimeError:
            # Blown-up weights give NaN firing probabilities, which torch.bernoulli (the
            # sampled joint estimator's draws) refuses before fit's end-of-epoch check sees
            # the loss.
            with torch.no_grad():
                _, theta = network.encode(batch[0])
            if torch.isfinite(theta).all():
                raise
            raise TrainingDivergedError(MSG_DIVERGED, epoch=epoch, loss="nan") from None
        return totals

    def _training_step(self, device: torch.device) -> TrainingStep:
        """The step for the chosen method: the bernoulli loss in closed form, the joint
        one through autograd (training.py), a baseline's its own."""
        gamma = float(self.gamma)
        if self.method == "bernoulli":
            cells = information_cells(len(self.groups_), self.objective, device=device)
            return functools.partial(closed_form_step, gamma=gamma, cells=cells)
        baseline = self._baseline()
        if baseline is not None:
            return functools.partial(baseline.STEP, gamma=gamma)
        return functools.partial(autograd_step, gamma=gamma, penalty=self._information_penalty)

    def _figures(self) -> tuple[str, ...]:
        """The names of what the method's step returns: each epoch's record holds their means."""
        baseline = self._baseline()
        return FIGURES if baseline is None else baseline.FIGURES

    def _information_penalty(
        self,
        theta: torch.Tensor,
        groups: torch.Tensor,
        labels: torch.Tensor,
        weights: torch.Tensor | None,
        generator: torch.Generator,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch's information term in bits, I(T;S) or I(T;S|Y) as the objective says
        and the method computes it, and the term the loss differentiates (the same
        tensor, except for the sampled joint estimator, whose surrogate carries the
        score-function part of the gradient)."""
        if self.objective == "separation":
            estimate = functools.partial(self._independence_penalty, generator=generator)
            value, surrogate = conditional_on_labels(estimate, theta, groups, labels, weights)
            return value, surrogate
        return self._independence_penalty(theta, groups, weights, generator=generator)

    def _independence_penalty(
        self, theta: torch.Tensor, groups: torch.Tensor, weights: torch.Tensor | None, *, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        n_groups = len(self.groups_)
        if self.method == "bernoulli":  # fit trains it in closed form; experiments use this
            mi = bernoulli_mutual_information(theta, groups, n_groups, row_weights=weights)
            return mi, mi
        if self.joint_samples is None:
            mi = joint_mutual_information(theta, groups, n_groups, row_weights=weights)
            return mi, mi
        return sampled_joint_mutual_information(
            theta, groups, n_groups, samples=int(self.joint_samples), generator=generator, row_weights=weights
        )

    # -- inference -------------------------------------------------------------------
    def _inputs(self, X) -> np.ndarray:
        """X checked against the fitted model as scikit-learn checks it (feature count and
        names), float32 and C-contiguous."""
        X = validate_data(self, X, dtype=np.float32, reset=False)
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

    def code_draws(self, X, *, n_samples: int | None = None) -> Iterator[torch.Tensor]:
        """The seeded code draws behind every score: (n_samples, rows, code_size) bit
        tensors, one per chunk of rows, in row order.

        A row's draws are a function of the row and the seed alone (rowwise.py), so its
        score is the same in any order, subset or file. Anything that rescores the
        same codes through an edited head (the audit's interventions) sees exactly the
        draws that ``predict_proba`` uses.
        """
        check_is_fitted(self, "network_")
        return self._draws(self._inputs(X), n_samples)

    @torch.no_grad()
    def _draws(self, X: np.ndarray, n_samples: int | None) -> Iterator[torch.Tensor]:
        """code_draws of an X already checked by _inputs."""
        for chunk, uniforms in self._uniform_chunks(X, n_samples):
            yield self._chunk_draws(chunk, uniforms)

    def _uniform_chunks(self, X: np.ndarray, n_samples: int | None) -> Iterator[tuple[np.ndarray, torch.Tensor]]:
        """Row chunks of X (a budget bounds the draws they carry) with the uniforms their
        draws compare theta with, (draws, rows, code_size): a function of the rows, the seed
        and the draws alone, so models alike in these share them (batched.py)."""
        draws = int(n_samples if n_samples is not None else self.n_samples)
        if draws <= 0:
            raise ParameterError("{n_samples} must be positive, got {got}", got=draws)
        seed, width = int(self.random_state) + _SCORING_SEED_OFFSET, self._code_size()
        rows = rowwise.rows_per_chunk(draws, width)
        for start in range(0, X.shape[0], rows):
            chunk = X[start : start + rows]
            yield chunk, rowwise.uniform_draws(rowwise.row_keys(chunk, seed), draws, width)

    @torch.no_grad()
    def _chunk_draws(self, chunk: np.ndarray, uniforms: torch.Tensor) -> torch.Tensor:
        theta = rowwise.firing_probabilities(self.network_, torch.from_numpy(chunk).to(self._device()))
        uniforms = uniforms.to(theta.device)
        # u < theta, written as floats at once: a sixth of the time of a bool tensor converted.
        return torch.gt(theta, uniforms, out=torch.empty_like(uniforms, dtype=theta.dtype))

    @torch.no_grad()
    def _chunk_scores(self, chunk: np.ndarray, uniforms: torch.Tensor) -> torch.Tensor:
        """p(y = classes_[1]) of a chunk of _uniform_chunks: the mean over its draws."""
        head = self.network_.head
        return rowwise.mean_probability(self._chunk_draws(chunk, uniforms), head.weight, head.bias)

    def _positive_scores(self, X: np.ndarray, n_samples: int | None = None) -> np.ndarray:
        """p(y = classes_[1]) of an X already checked by _inputs."""
        scores = [self._chunk_scores(chunk, uniforms) for chunk, uniforms in self._uniform_chunks(X, n_samples)]
        return torch.cat(scores).cpu().numpy() if scores else np.zeros(0)

    @_within_thread_limit
    def predict_proba(self, X, *, n_samples: int | None = None) -> np.ndarray:
        """(n, 2) class probabilities, columns in ``classes_`` order: p(classes_[1]) is the
        mean over ``n_samples`` code draws."""
        check_is_fitted(self, "network_")
        positive = self._positive_scores(self._inputs(X), n_samples)
        return np.column_stack([1.0 - positive, positive])

    def predict(self, X, *, threshold: float | None = None, n_samples: int | None = None) -> np.ndarray:
        """Labels from ``classes_``: ``classes_[1]`` where p(classes_[1]) reaches
        ``threshold``, by default the one chosen in training (``threshold_``)."""
        cut = self.decision_threshold(threshold)
        return self.classes_[(self.predict_proba(X, n_samples=n_samples)[:, 1] >= cut).astype(np.intp)]

    @_within_thread_limit
    @torch.no_grad()
    def firing_probabilities(self, X) -> np.ndarray:
        """theta: the (n, code_size) Bernoulli parameters of the binary layer."""
        check_is_fitted(self, "network_")
        thetas = [theta for _, theta in self._chunks(self._inputs(X), 1)]
        return torch.cat(thetas).cpu().numpy() if thetas else np.zeros((0, self._code_size()), np.float32)

    @_within_thread_limit
    @torch.no_grad()
    def binary_codes(self, X) -> np.ndarray:
        """One sampled binary code per row, (n, code_size) uint8: the representation T
        (the first of the draws that scoring uses)."""
        check_is_fitted(self, "network_")
        codes = [bits[0].to(torch.uint8).cpu() for bits in self._draws(self._inputs(X), 1)]
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
            "classes": self.classes_.tolist(),
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
        model.check_params()
        network = model._build_network(int(description["n_features_in"]), len(description["groups"]))
        network.load_state_dict(weights)
        network.to(resolve_device(device)).eval()
        model.network_ = network
        model.n_features_in_ = int(description["n_features_in"])
        model.groups_ = np.asarray(description["groups"])
        model.history_ = list(description.get("history", []))
        # Bundles written before thresholds were chosen in training cut at 0.5.
        chosen = description.get("decision_threshold") or {"value": 0.5, "rule": LEGACY_THRESHOLD_RULE}
        model.threshold_, model.threshold_rule_ = float(chosen["value"]), str(chosen["rule"])
        model.classes_ = np.asarray(description.get("classes", LEGACY_CLASSES))
        return model
