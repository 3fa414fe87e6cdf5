"""The representation audit: what the binary layer still reveals about S, and what
removing the neurons that carry S does to the predictions (DESIGN §3-4).
"""

from __future__ import annotations

import copy
import functools
import statistics
from dataclasses import asdict, dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch
from scipy.stats import rankdata
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, balanced_accuracy_score, roc_auc_score

from . import rowwise
from .errors import InputError, ParameterError
from .estimator import SQNNClassifier
from .information import (
    InformationEstimate,
    checked_weights,
    conditional_flows,
    distinct_codes,
    effective_rows,
    neuron_entropies,
    neuron_information,
    plugin_information,
)
from .jsonable import plain
from .metrics import evaluate_scores
from .splits import check_test_size, stratified_indices

__all__ = [
    "ForestAudit",
    "NeuronFlows",
    "RepresentationAudit",
    "InterventionPoint",
    "audit_representation",
    "forest_audit",
    "plugin_sparse_cells",
    "neuron_flows",
    "rank_neurons",
    "prune",
    "intervention_curves",
    "summarise_interventions",
    "RANKINGS",
    "PRUNE_MODES",
]

RANKINGS = ("bias", "ratio", "conditional")
PRUNE_MODES = ("zero", "clamp")
CODE = "sampled code"
THETA = "firing probabilities"
# Trees are added in rounds so that progress can be shown; warm starting grows the same
# forest a fit with all trees at once would, round by round.
_TREES_PER_ROUND = 100
# Keeps the ratio ranking finite for neurons that carry no information about y.
_RATIO_FLOOR = 1e-6
# A leakage AUC's noise is the spread of the AUC over resamples of the test rows: each
# resample draws every group's test rows with replacement (each row with all its code
# draws, which are not independent rows), and the fitted forests rescore it. That holds
# for the one-vs-rest macro AUC and for stacked draws, where Hanley-McNeil and DeLong
# assume a single binary AUC over independent rows; both views are rescored on the same
# resamples, so the gap between them gets its own standard error, correlation included.
BOOTSTRAP_RESAMPLES = 200
_BOOTSTRAP_STREAM = 1
# A figure is told apart from chance, or from another, beyond this many standard errors.
NOISE_STDERRS = 2.0
# The smallest leakage-AUC gap between theta and a sampled code worth a warning, however
# many rows make it significant.
THETA_GAP_FLOOR = 0.02
# Miller-Madow's correction is the mean of the chi-square law the plug-in I(T;S) follows
# (2n I ~ chi2) under independence; Cochran's rule for that law asks that at most a fifth
# of the (code, group) cells expect fewer than 5 rows. Beyond it the plug-in figure is
# biased upwards (with a code per row it is about H(S), whatever the code reveals).
SPARSE_CELL_ROWS = 5.0
SPARSE_CELL_SHARE = 0.2

ProgressCallback = Callable[[str, int, int], None]


class _Figures:
    """``to_dict`` for a frozen dataclass of figures: its fields, JSON-ready."""

    def to_dict(self) -> dict:
        return plain(asdict(self))


@dataclass(frozen=True)
class ForestAudit(_Figures):
    """How well a random forest recovers S (and y) from one view of the layer."""

    audited: str
    rf_accuracy: float
    majority_share: float
    adrg: float
    balanced_accuracy: float
    leakage_auc: float
    y_accuracy: float | None = None
    y_auc: float | None = None
    leakage_auc_stderr: float | None = None  # None where not measured

    @property
    def accuracy_gain(self) -> float:
        """Accuracy over the majority guess, signed: ADRG is its absolute value, so a
        forest worse than the majority guess (negative gain) counts there as leakage."""
        return self.rf_accuracy - self.majority_share

    def below_chance(self) -> str | None:
        """None at or above chance; else whether the AUC is below 0.5 "within noise" or
        "beyond noise". Either way it is no information found about S, not anti-leakage."""
        if not self.leakage_auc < 0.5:
            return None
        noise = NOISE_STDERRS * (self.leakage_auc_stderr or 0.0)
        return "within noise" if 0.5 - self.leakage_auc <= noise else "beyond noise"

    def to_dict(self) -> dict:
        return {**super().to_dict(), "accuracy_gain": plain(self.accuracy_gain)}


@dataclass(frozen=True)
class NeuronFlows(_Figures):
    """Information one binary neuron carries, in bits, over the whole dataset."""

    neuron: int
    entropy: float
    bias_flow: float
    accuracy_flow: float
    conditional_flow: float


@dataclass(frozen=True)
class RepresentationAudit:
    code: ForestAudit
    theta: ForestAudit
    mi_joint: InformationEstimate
    mi_plugin: InformationEstimate
    distinct_codes: int
    neurons: tuple[NeuronFlows, ...]
    n: int
    groups: tuple[str, ...]
    trees: int
    test_size: float
    draws: int
    theta_gap_stderr: float | None = None  # of theta's leakage AUC minus the code's
    plugin_sparse_cells: float | None = None  # share of (code, group) cells under Cochran's 5 rows

    @property
    def theta_gap(self) -> float:
        return self.theta.leakage_auc - self.code.leakage_auc

    @property
    def theta_reveals_more(self) -> bool:
        """Whether theta reveals S better than a sampled code beyond the forests' noise."""
        noise = NOISE_STDERRS * (self.theta_gap_stderr or 0.0)
        return self.theta_gap > max(THETA_GAP_FLOOR, noise)

    @property
    def plugin_biased_upwards(self) -> bool:
        return self.plugin_sparse_cells is not None and self.plugin_sparse_cells > SPARSE_CELL_SHARE

    @property
    def plugin_caveat(self) -> str | None:
        if not self.plugin_biased_upwards:
            return None
        return (
            f"biased upwards: {self.plugin_sparse_cells:.0%} of the (code, group) cells expect fewer than "
            f"{SPARSE_CELL_ROWS:g} rows ({self.distinct_codes} distinct codes in {self.n} rows), past the "
            f"{SPARSE_CELL_SHARE:.0%} the Miller-Madow correction holds to; the joint figure is the one to read"
        )

    def _plugin_dict(self) -> dict:
        return {
            **self.mi_plugin.to_dict(),
            "sparse_cells": self.plugin_sparse_cells,
            "biased_upwards": self.plugin_biased_upwards,
            "caveat": self.plugin_caveat,
        }

    def to_dict(self) -> dict:
        """The sampled code's figures at the top level (the paper's object), theta's beside."""
        code = self.code.to_dict()
        return plain({
            "audited": code.pop("audited"),
            **code,
            "theta": self.theta.to_dict(),
            "theta_gap": self.theta_gap,
            "theta_gap_stderr": self.theta_gap_stderr,
            "theta_reveals_more": self.theta_reveals_more,
            "mi_joint": self.mi_joint.to_dict(),
            "mi_plugin": self._plugin_dict(),
            "distinct_codes": self.distinct_codes,
            "neurons": [n.to_dict() for n in self.neurons],
            "n": self.n,
            "groups": list(self.groups),
            "trees": self.trees,
            "test_size": self.test_size,
            "draws": self.draws,
        })


def _forest(trees: int, seed: int, n_jobs: int, label: str, progress: ProgressCallback | None, X, y, sample_weight=None):
    forest = RandomForestClassifier(n_estimators=0, warm_start=True, random_state=seed, n_jobs=n_jobs)
    grown = 0
    while grown < trees:
        grown = min(trees, grown + _TREES_PER_ROUND)
        forest.set_params(n_estimators=grown)
        forest.fit(X, y, sample_weight=sample_weight)
        if progress is not None:
            progress(label, grown, trees)
    # Parallel prediction adds the trees' votes in whatever order the threads finish, so
    # the probabilities, and the AUCs, would change in the last bits from run to run.
    forest.set_params(n_jobs=1)
    return forest


def _rank_auc(positive: np.ndarray, score: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """The binary AUC as the Mann-Whitney statistic, ties counted half: what
    roc_auc_score returns, without its input checks, which would make up most of the
    bootstrap's time. With ``sample_weight`` a (positive, negative) pair counts with
    the product of their weights, as in roc_auc_score."""
    if sample_weight is not None:
        return _weighted_rank_auc(positive, score, sample_weight)
    ranks = rankdata(score)
    n_positive = int(positive.sum())
    n_negative = len(positive) - n_positive
    return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def _weighted_rank_auc(positive: np.ndarray, score: np.ndarray, weights: np.ndarray) -> float:
    """``_rank_auc`` of weighted rows: each positive's weight times the negatives' weight
    scored below it, plus half of that scored the same, over the product of the totals."""
    values, inverse = np.unique(score, return_inverse=True)
    inverse = inverse.reshape(-1)
    negative_mass = np.bincount(inverse, weights=np.where(positive, 0.0, weights), minlength=len(values))
    below = np.cumsum(negative_mass) - negative_mass
    beaten = below[inverse] + 0.5 * negative_mass[inverse]
    positive_weights = np.where(positive, weights, 0.0)
    return float(positive_weights @ beaten / (positive_weights.sum() * negative_mass.sum()))


def _auc_of(
    proba: np.ndarray,
    classes: np.ndarray,
    labels: np.ndarray,
    binary_auc: Callable[..., float] = roc_auc_score,
    sample_weight: np.ndarray | None = None,
) -> float:
    """The AUC of a forest's probabilities ``proba`` (columns in ``classes`` order) for
    ``labels``, its rows weighted by ``sample_weight`` if given: one-vs-rest macro for
    more than two classes."""
    if sample_weight is not None:
        # A row of weight 0 is no test row: a class only such rows hold has no AUC.
        kept = sample_weight > 0
        proba, labels = proba[kept], labels[kept]
        binary_auc = functools.partial(binary_auc, sample_weight=sample_weight[kept])
    if len(np.unique(labels)) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(binary_auc(labels == classes[1], proba[:, 1]))
    # One-vs-rest over the classes the forest knows; a class absent from the test split
    # has no AUC, so the average runs over the others.
    scores = [
        binary_auc(labels == cls, proba[:, i]) for i, cls in enumerate(classes) if 0 < (labels == cls).sum() < len(labels)
    ]
    return float(np.mean(scores)) if scores else float("nan")


def _leakage_auc(forest: RandomForestClassifier, X, labels: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    return _auc_of(forest.predict_proba(X), forest.classes_, labels, sample_weight=sample_weight)


@dataclass(frozen=True)
class _Scores:
    """A view's S-forest probabilities on the test rows, for the bootstrap: ``rows[i]``
    holds the positions of test row i (one per code draw), ``weights`` the weight of
    each position (None: equal)."""

    proba: np.ndarray
    classes: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    weights: np.ndarray | None = None


def _bootstrap_aucs(views: Sequence[_Scores], groups: np.ndarray, seed: int) -> np.ndarray:
    """(BOOTSTRAP_RESAMPLES, views) leakage AUCs, every view rescored on the same
    resamples of the test rows, each group's rows drawn with replacement; a drawn row
    carries its weight."""
    rng = np.random.default_rng([seed, _BOOTSTRAP_STREAM])  # not the split's stream, which seed alone keys
    strata = [np.flatnonzero(groups == label) for label in np.unique(groups)]
    aucs = np.empty((BOOTSTRAP_RESAMPLES, len(views)))
    for resample in range(BOOTSTRAP_RESAMPLES):
        rows = np.concatenate([rng.choice(stratum, size=len(stratum)) for stratum in strata])
        for v, view in enumerate(views):
            positions = view.rows[rows].ravel()
            weights = None if view.weights is None else view.weights[positions]
            aucs[resample, v] = _auc_of(view.proba[positions], view.classes, view.labels[positions], _rank_auc, weights)
    return aucs


def _stderr(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else float("nan")


@dataclass(frozen=True)
class _Side:
    """One side of the audit split in one view: the rows' features, groups, labels
    (None: no forest for y) and weights (None: equal)."""

    X: np.ndarray
    s: np.ndarray
    y: np.ndarray | None = None
    weights: np.ndarray | None = None


def _majority_share(labels: np.ndarray, weights: np.ndarray | None) -> float:
    """The share of the most common label: of the rows, or of their weight."""
    _, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    masses = counts if weights is None else np.bincount(inverse.reshape(-1), weights=weights)
    return float(masses.max() / masses.sum())


def _scored_forest_audit(audited: str, train: _Side, test: _Side, *, trees, seed, n_jobs, progress) -> tuple[ForestAudit, np.ndarray, np.ndarray]:
    """``forest_audit``'s figures, without the AUC's noise, and the S forest's test
    probabilities with its classes. Forests fit the weighted training rows and are
    scored on the weighted test rows."""
    forest = _forest(trees, seed, n_jobs, f"S from {audited}", progress, train.X, train.s, train.weights)
    proba = forest.predict_proba(test.X)
    predicted = forest.classes_.take(np.argmax(proba, axis=1))  # what forest.predict returns
    majority = _majority_share(test.s, test.weights)
    accuracy = float(accuracy_score(test.s, predicted, sample_weight=test.weights))
    y_accuracy = y_auc = None
    if train.y is not None and test.y is not None:
        y_forest = _forest(trees, seed, n_jobs, f"y from {audited}", progress, train.X, train.y, train.weights)
        y_accuracy = float(accuracy_score(test.y, y_forest.predict(test.X), sample_weight=test.weights))
        y_auc = _leakage_auc(y_forest, test.X, test.y, test.weights)
    audit = ForestAudit(
        audited=audited,
        rf_accuracy=accuracy,
        majority_share=majority,
        adrg=abs(accuracy - majority),
        balanced_accuracy=float(balanced_accuracy_score(test.s, predicted, sample_weight=test.weights)),
        leakage_auc=_auc_of(proba, forest.classes_, test.s, sample_weight=test.weights),
        y_accuracy=y_accuracy,
        y_auc=y_auc,
    )
    return audit, proba, forest.classes_


def forest_audit(
    audited: str,
    train_X: np.ndarray,
    test_X: np.ndarray,
    train_s: np.ndarray,
    test_s: np.ndarray,
    *,
    trees: int,
    seed: int,
    n_jobs: int,
    progress: ProgressCallback | None,
    train_y: np.ndarray | None = None,
    test_y: np.ndarray | None = None,
    sample_weight: tuple[np.ndarray, np.ndarray] | None = None,
) -> ForestAudit:
    """Fit forests on one view of the training rows and score them on the test rows:
    how well S (and, given labels, y) can be recovered from that view, and the leakage
    AUC's standard error over resamples of the test rows (each row independent).

    ``sample_weight`` is the pair (training rows' weights, test rows' weights): the
    forests fit the weighted training rows and every figure is of the weighted test rows.
    """
    train_weights, test_weights = (None, None) if sample_weight is None else sample_weight
    train = _Side(train_X, train_s, train_y, checked_weights(train_weights, len(train_s)))
    test = _Side(test_X, np.asarray(test_s), test_y, checked_weights(test_weights, len(test_s)))
    audit, proba, classes = _scored_forest_audit(audited, train, test, trees=trees, seed=seed, n_jobs=n_jobs, progress=progress)
    scores = _Scores(proba, classes, test.s, np.arange(len(test.s)).reshape(-1, 1), test.weights)
    return replace(audit, leakage_auc_stderr=_stderr(_bootstrap_aucs([scores], test.s, seed)[:, 0]))


def _sampled_codes(theta: np.ndarray, draws: int, seed: int) -> np.ndarray:
    """(draws, n, m) uint8: codes drawn independently for every row, as the paper audits.

    Not the draws scoring uses: those are keyed by each row's content (rowwise.py), so
    identical rows share them, and a forest would then read the features' combination
    off the code rather than what stochastic quantization leaves of S.
    """
    generator = torch.Generator().manual_seed(seed)
    probabilities = torch.from_numpy(np.ascontiguousarray(theta, dtype=np.float32))
    codes = np.empty((draws, *theta.shape), dtype=np.uint8)
    for draw in range(draws):  # one float draw at a time: the result is a quarter of its size
        codes[draw] = torch.bernoulli(probabilities, generator=generator).to(torch.uint8).numpy()
    return codes


def neuron_flows(
    theta: np.ndarray, groups: np.ndarray, y: np.ndarray, *, seed: int = 0, sample_weight: np.ndarray | None = None
) -> tuple[tuple[NeuronFlows, ...], InformationEstimate]:
    """Per-neuron entropy, bias flow I(T_i;S), accuracy flow I(T_i;y) and conditional
    flow I(T_i;S | T_-i), with the joint I(T;S) the conditional flows come from; the
    rows weighted by ``sample_weight`` if given."""
    entropy = neuron_entropies(theta, sample_weight)
    bias = neuron_information(theta, groups, sample_weight)
    accuracy = neuron_information(theta, y, sample_weight)
    conditional, joint = conditional_flows(theta, groups, seed=seed, sample_weight=sample_weight)
    neurons = tuple(
        NeuronFlows(i, float(entropy[i]), float(bias[i]), float(accuracy[i]), float(conditional[i]))
        for i in range(theta.shape[1])
    )
    return neurons, joint


def _audit_groups(groups, weights, *, trees: int, test_size: float, draws: int) -> tuple[np.ndarray, np.ndarray]:
    """The groups as text and their sorted labels, once the audit's settings, groups
    and weights are known to allow a stratified split."""
    check_test_size(test_size)
    if trees < 1 or draws < 1:
        raise ParameterError("{trees} and {draws} must be positive")
    groups = np.asarray(groups).astype(str)
    labels, inverse, counts = np.unique(groups, return_inverse=True, return_counts=True)
    if len(labels) < 2:
        raise InputError(f"the sensitive attribute has a single group ({labels[0]}); there is nothing to audit")
    if weights is not None and np.count_nonzero(np.bincount(inverse.reshape(-1), weights=weights)) < 2:
        raise InputError("only one group of the sensitive attribute has rows of positive weight; there is nothing to audit")
    if counts.min() < 2:
        raise InputError(
            f"group '{labels[counts.argmin()]}' has a single row; a stratified audit split needs at least two"
        )
    return groups, labels


def _view_audits(theta, codes, y, groups, weights, rows, *, trees, seed, n_jobs, progress) -> tuple[ForestAudit, ForestAudit, float]:
    """The forests on the sampled codes (every draw of every row stacked, each with its
    row's weight) and on theta, trained on ``rows[0]`` and scored on ``rows[1]``, each
    with its leakage AUC's standard error, and the standard error of theta's AUC minus
    the code's."""
    train_rows, test_rows = rows
    draws = len(codes)

    def code_side(index: np.ndarray) -> _Side:
        weight = None if weights is None else np.tile(weights[index], draws)
        stacked = codes[:, index].reshape(-1, codes.shape[-1])
        return _Side(stacked, np.tile(groups[index], draws), np.tile(y[index], draws), weight)

    def theta_side(index: np.ndarray) -> _Side:
        return _Side(theta[index], groups[index], weights=None if weights is None else weights[index])

    forests = {"trees": trees, "seed": seed, "n_jobs": n_jobs, "progress": progress}
    code_test, theta_test = code_side(test_rows), theta_side(test_rows)
    code_audit, code_proba, code_classes = _scored_forest_audit(CODE, code_side(train_rows), code_test, **forests)
    theta_audit, theta_proba, theta_classes = _scored_forest_audit(THETA, theta_side(train_rows), theta_test, **forests)
    n_test = len(test_rows)
    # Stacking is draw-major: test row i's draws sit at i, n_test + i, 2 n_test + i, ...
    code_positions = np.arange(n_test)[:, None] + n_test * np.arange(draws)[None, :]
    aucs = _bootstrap_aucs(
        [
            _Scores(code_proba, code_classes, code_test.s, code_positions, code_test.weights),
            _Scores(theta_proba, theta_classes, theta_test.s, np.arange(n_test)[:, None], theta_test.weights),
        ],
        theta_test.s,
        seed,
    )
    return (
        replace(code_audit, leakage_auc_stderr=_stderr(aucs[:, 0])),
        replace(theta_audit, leakage_auc_stderr=_stderr(aucs[:, 1])),
        _stderr(aucs[:, 1] - aucs[:, 0]),
    )


def plugin_sparse_cells(codes: np.ndarray, groups: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """The share of (code, group) cells whose expected count under independence,
    n_code * n_group / n, is below SPARSE_CELL_ROWS: over SPARSE_CELL_SHARE, the
    plug-in I(T;S) is biased upwards (Cochran's rule for its chi-square correction).

    With weights, a cell expects n p(code) p(group) rows, the shares weighted and n
    the weights' effective size, which the plug-in's correction uses too; rows of
    weight 0 are dropped."""
    codes, groups = np.asarray(codes), np.asarray(groups)
    weights = checked_weights(sample_weight, len(groups))
    if weights is None:
        code_counts = np.unique(codes, axis=0, return_counts=True)[1]
        group_counts = np.unique(groups, return_counts=True)[1]
        expected = np.outer(code_counts, group_counts) / len(groups)
        return float(np.mean(expected < SPARSE_CELL_ROWS))
    kept = weights > 0
    weights = weights[kept] / weights.sum()
    code_shares = np.bincount(np.unique(codes[kept], axis=0, return_inverse=True)[1].reshape(-1), weights=weights)
    group_shares = np.bincount(np.unique(groups[kept], return_inverse=True)[1].reshape(-1), weights=weights)
    expected = effective_rows(weights) * np.outer(code_shares, group_shares)
    return float(np.mean(expected < SPARSE_CELL_ROWS))


def audit_representation(
    estimator: SQNNClassifier,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    *,
    trees: int = 1000,
    test_size: float = 0.3,
    draws: int = 1,
    seed: int = 0,
    n_jobs: int = -1,
    progress: ProgressCallback | None = None,
    sample_weight: np.ndarray | None = None,
) -> RepresentationAudit:
    """Audit both views of the binary layer: sampled codes and firing probabilities.

    With ``sample_weight`` (frequency weights, one per row) every figure is that of
    the weighted rows: the forests fit and are scored on them, and the information
    measures are those of the weighted mixture. The split, ``n`` and the draws still
    count rows. A row of weight 0 is dropped from the information measures, and the
    forests treat it as a tree treats the rows its bootstrap left out.
    """
    weights = checked_weights(sample_weight, len(y))
    groups, labels = _audit_groups(groups, weights, trees=trees, test_size=test_size, draws=draws)
    rows = stratified_indices(len(y), groups, test_size=test_size, seed=seed, action="split for the audit with")
    theta = estimator.firing_probabilities(X).astype(np.float64)
    codes = _sampled_codes(theta, draws, seed)
    code_audit, theta_audit, theta_gap_stderr = _view_audits(
        theta, codes, y, groups, weights, rows, trees=trees, seed=seed, n_jobs=n_jobs, progress=progress
    )
    neurons, joint = neuron_flows(theta, groups, y, seed=seed, sample_weight=weights)
    first_draw = codes[0]
    return RepresentationAudit(
        code=code_audit,
        theta=theta_audit,
        mi_joint=joint,
        mi_plugin=plugin_information(first_draw, groups, weights),
        distinct_codes=distinct_codes(first_draw if weights is None else first_draw[weights > 0]),
        neurons=neurons,
        n=len(y),
        groups=tuple(str(label) for label in labels),
        trees=trees,
        test_size=test_size,
        draws=draws,
        theta_gap_stderr=theta_gap_stderr,
        plugin_sparse_cells=plugin_sparse_cells(first_draw, groups, weights),
    )


# -- interventions ----------------------------------------------------------------------
def rank_neurons(neurons: Sequence[NeuronFlows], by: str) -> list[int]:
    """Neuron indices, the one carrying most information about S first."""
    keys = {
        "bias": lambda n: n.bias_flow,
        "ratio": lambda n: n.bias_flow / max(n.accuracy_flow, _RATIO_FLOOR),
        "conditional": lambda n: n.conditional_flow,
    }
    if by not in keys:
        raise InputError(f"ranking must be one of {', '.join(RANKINGS)}, got {by!r}")
    # Stable sort on the negated key: ties keep neuron order, so rankings are reproducible.
    return [n.neuron for n in sorted(neurons, key=lambda n: -keys[by](n))]


def _edited_head(estimator: SQNNClassifier, removed: Sequence[int], mode: str, mean_rates: np.ndarray | None):
    head = estimator.network_.head
    weight = head.weight.detach().clone()
    bias = head.bias.detach().clone()
    index = torch.as_tensor(list(removed), dtype=torch.long)
    if mode == "clamp":
        if mean_rates is None:
            raise ValueError("clamping needs the mean firing rates")
        # A neuron fixed at its mean rate adds a constant to the logit: fold it into the bias.
        rates = torch.as_tensor(mean_rates, dtype=weight.dtype)[index]
        bias = bias + weight[:, index] @ rates
    elif mode != "zero":
        raise InputError(f"mode must be one of {', '.join(PRUNE_MODES)}, got {mode!r}")
    weight[:, index] = 0.0
    return weight, bias


def prune(
    estimator: SQNNClassifier, removed: Sequence[int], *, mode: str = "zero", mean_rates: np.ndarray | None = None
) -> SQNNClassifier:
    """A copy of the model whose listed binary neurons no longer reach the head."""
    weight, bias = _edited_head(estimator, removed, mode, mean_rates)
    pruned = copy.deepcopy(estimator)
    with torch.no_grad():
        pruned.network_.head.weight.copy_(weight)
        pruned.network_.head.bias.copy_(bias)
    return pruned


@dataclass(frozen=True)
class InterventionPoint(_Figures):
    strategy: str
    repeat: int
    k: int
    removed: tuple[int, ...]
    auc: float
    gpa: float
    audc: float
    dp_difference: float


def intervention_curves(
    estimator: SQNNClassifier,
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    neurons: Sequence[NeuronFlows],
    *,
    mode: str = "zero",
    random_repeats: int = 5,
    seed: int = 0,
    threshold: float = 0.5,
    min_group_size: int = 30,
    n_samples: int | None = None,
    sample_weight: np.ndarray | None = None,
) -> list[InterventionPoint]:
    """Metrics after removing the top-k neurons, k = 0..m, for every ranking.

    All points rescore the same seeded code draws through an edited head, so the
    differences between strategies are not sampling noise, and each point equals what
    ``sqnn evaluate`` reports for the bundle ``sqnn prune`` writes. With
    ``sample_weight`` the metrics are of the weighted rows, and clamping fixes a neuron
    at its weighted mean rate.
    """
    weights = checked_weights(sample_weight, len(y))
    draws = list(estimator.code_draws(X, n_samples=n_samples))
    theta = estimator.firing_probabilities(X)
    mean_rates = theta.mean(axis=0) if weights is None else np.average(theta, axis=0, weights=weights)
    m = len(neurons)
    orders: list[tuple[str, int, list[int]]] = [(by, 0, rank_neurons(neurons, by)) for by in RANKINGS]
    rng = np.random.default_rng(seed)
    orders += [("random", r, rng.permutation(m).tolist()) for r in range(random_repeats)]

    points = []
    for strategy, repeat, order in orders:
        for k in range(m + 1):
            weight, bias = _edited_head(estimator, order[:k], mode, mean_rates)
            scores = torch.cat([rowwise.mean_probability(bits, weight, bias) for bits in draws]).cpu().numpy()
            result = evaluate_scores(
                y, scores, sensitive_features=groups, threshold=threshold, min_group_size=min_group_size, sample_weight=weights
            )
            points.append(
                InterventionPoint(strategy, repeat, k, tuple(order[:k]), result.auc, result.gpa, result.audc, result.dp_difference)
            )
    return points


def summarise_interventions(points: Sequence[InterventionPoint]) -> dict[str, list[dict[str, Any]]]:
    """Per strategy and k, the metrics after removal (random: mean and spread over repeats)."""
    grouped: dict[str, dict[int, list[InterventionPoint]]] = {}
    for point in points:
        grouped.setdefault(point.strategy, {}).setdefault(point.k, []).append(point)
    summary: dict[str, list[dict[str, Any]]] = {}
    for strategy, by_k in grouped.items():
        rows = []
        for k, group in sorted(by_k.items()):
            row: dict[str, Any] = {"k": k}
            for metric in ("auc", "gpa", "audc", "dp_difference"):
                values = [getattr(p, metric) for p in group]
                row[metric] = statistics.fmean(values)
                if len(values) > 1:
                    row[f"{metric}_std"] = statistics.pstdev(values)
            if len(group) == 1:
                row["removed"] = list(group[0].removed)
            rows.append(row)
        summary[strategy] = rows
    return summary
