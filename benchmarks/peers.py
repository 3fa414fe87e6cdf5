"""sqnn against its peers: fairness-aware and plain classifiers under one protocol.

Usage (from the repository root, after `pip install -e '.[test]'`, which brings
fairlearn):

    python benchmarks/peers.py > peers.md        # every dataset and method

    # issue 16's run in RESULTS.md: both COMPAS protocols, every default method
    python benchmarks/peers.py --datasets compas,compas_all --out benchmarks/peers_regimes.json

    # issue 16's per-metric selection run in RESULTS.md (one dataset shown)
    python benchmarks/peers.py --datasets bank --selection per-metric --sweep-steps 0 \
        --audit-trees 100 --jobs 2 --out benchmarks/peers_per_metric_bank.json

    # a smoke run (a minute)
    python benchmarks/peers.py --datasets compas --outer-folds 2 --epochs 2 --quick \
        --audit-trees 20 --sweep-steps 3 --out /tmp/peers-smoke.json

Options: --datasets (compas,compas_all,adult,bank), --outer-folds (3), --inner-folds (2),
--epochs (neural methods; default sqnn's), --methods (comma list of METHODS
below), --quick (one or two configurations per method), --audit-trees (1000; 0
skips the audit), --sweep-steps (11; 0 skips the sweep), --jobs (tasks side by
side, default the CPU count), --selection (criterion, the default, or per-metric: see
below), --out (JSON, default benchmarks/peers.json).

Datasets: `compas` is the paper's protocol (African-American and Caucasian rows only,
S = race); `compas_all` keeps every race, S = African-American against the rest.

Protocol (DESIGN.md §5): outer StratifiedKFold on y (seed 0); all preprocessing
(`TabularEncoder`) is fitted on the training part only; S is not a feature except
for `sqnn_bernoulli_s`, which is `sqnn train --sensitive-as-feature`, and
`logistic_s`. Methods fall in two information regimes, those whose scorer never sees
S and those whose scorer does (`sqnn_bernoulli_s`, `logistic_s`, ThresholdOptimizer),
and each regime gets its own table: only methods of one regime are compared. Each method
has a small configuration grid. A configuration is scored on inner StratifiedKFold
folds of the training part by the paper's criterion, AUC + (1 - GPA) + (1 - AUDC)
averaged over the inner folds (a configuration that breaks the method scores -inf);
the best one is refitted on the whole training part and scored once on the outer
test fold, which is never used for selection. Metrics come from `sqnn_cli.metrics`.
With --selection per-metric, each method with a grid is also read column by column: the
dGPA column from the configuration with the lowest inner-fold mean dGPA and the dAUDC
column from the one with the lowest inner-fold mean dAUDC, every method alike, from the
same inner fits; each configuration so chosen is refitted on the training part (once,
if it is the criterion's or both columns'), and an extra table per regime reports it.
sqnn's selected models are also audited: a forest of --audit-trees trees learns S
from the training part's sampled codes and is scored on the test part's (ADRG,
leakage AUC). Separately, default sqnn is trained at each gamma of the default
`sqnn sweep-gamma` grid on the same outer folds, for Spearman(gamma, 1 - GPA).

Tasks (one method on one outer fold, or one sweep point) run --jobs at a time, each
on one thread. Writes every fold's numbers, the inner trials and the chosen
configuration to --out after every task, and prints per dataset and regime a markdown
table of mean ± std over the outer folds (best of each column in bold), whether each
sqnn variant beats the regime's best peer on dGPA and dAUDC, the sweep table, and a
line naming the machine and library versions.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from sqnn_cli.jsonable import plain
from sqnn_cli.metrics import evaluate_scores
from sqnn_cli.preprocess import TabularEncoder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data"
SEED = 0
METRICS = ("auc", "gpa", "audc", "dp_difference", "d_gpa", "d_audc")


# -- datasets (DESIGN.md §5) ---------------------------------------------------------


COMPAS_FEATURES = ["sex", "age_cat", "c_charge_degree", "priors_count"]


def load_compas() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / "compas.csv")
    # The paper kept only the two largest groups, making S binary.
    frame = frame[frame["race"].isin(["African-American", "Caucasian"])].reset_index(
        drop=True
    )
    return (
        frame[COMPAS_FEATURES],
        frame["two_year_recid"].to_numpy(dtype=np.int64),
        frame["race"].to_numpy(dtype=str),
    )


def load_compas_all() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Every race kept, S binary as African-American against the rest (issue 16): no
    row is dropped for its S, unlike the paper's two-group protocol."""
    frame = pd.read_csv(DATA / "compas.csv")
    s = np.where(frame["race"] == "African-American", "African-American", "other")
    return (
        frame[COMPAS_FEATURES],
        frame["two_year_recid"].to_numpy(dtype=np.int64),
        s.astype(str),
    )


def load_adult(
    path: Path = DATA / "adult.csv.gz",
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(path)
    y = (frame["income"] == ">50K").to_numpy(dtype=np.int64)
    return frame.drop(columns=["income", "sex"]), y, frame["sex"].to_numpy(dtype=str)


def load_bank() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / "bank.csv.gz")
    y = (frame["y"] == "yes").to_numpy(dtype=np.int64)
    # duration is known only after the call (it leaks y); age defines S, so it goes too.
    features = frame.drop(columns=["y", "duration", "age", "age_group"])
    return features, y, frame["age_group"].to_numpy(dtype=str)


DATASETS: dict[str, Callable[[], tuple[pd.DataFrame, np.ndarray, np.ndarray]]] = {
    "compas": load_compas,
    "compas_all": load_compas_all,
    "adult": load_adult,
    "bank": load_bank,
}


# -- methods -------------------------------------------------------------------------
# A method is a list of configurations and a function (config, X, y, s, epochs) that
# fits on a training part and returns a Fitted model whose scorer takes (X, s), so that
# methods which need S at prediction time (ThresholdOptimizer) fit the same mould as
# those that don't.


@dataclass(frozen=True)
class Fitted:
    score: Callable[[np.ndarray, np.ndarray], np.ndarray]  # (X, s) -> P(y=1)
    # The representation a method releases, for the random-forest audit; None if none.
    codes: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None


@dataclass(frozen=True)
class Method:
    name: str
    grid: list[dict[str, Any]]
    quick_grid: list[dict[str, Any]]
    fit: Callable[
        [dict[str, Any], np.ndarray, np.ndarray, np.ndarray, int | None], Fitted
    ]
    # Whether the scorer reads S. Only methods of one regime are compared with each
    # other: a model that needs S to score cannot be used where deciding on S is unlawful.
    sees_s: bool = False
    note: str = ""


REGIMES = {False: "never sees S", True: "sees S"}


def _logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=1000)


def _f64(X: np.ndarray) -> np.ndarray:
    # fairlearn 0.15 writes float64 values into a pandas Series typed by the estimator's
    # float32 output, which pandas 3 refuses (TypeError "Invalid value ... for dtype
    # 'float32'"); float64 inputs keep every intermediate float64.
    return np.asarray(X, dtype=np.float64)


def _with_s(groups: np.ndarray, X: np.ndarray, s: np.ndarray) -> np.ndarray:
    """X with S one-hot encoded as extra columns, as `sqnn train --sensitive-as-feature`
    does; `groups` are the training part's, so every part gets the same columns."""
    return np.hstack([X, (s[:, None] == groups[None, :]).astype(X.dtype)])


def fit_sqnn(method: str, *, sensitive_as_feature: bool = False):
    def fit(config, X, y, s, epochs):
        from sqnn_cli.estimator import SQNNClassifier

        groups = np.unique(s)

        def inputs(X_, s_):
            return _with_s(groups, X_, s_) if sensitive_as_feature else X_

        # Everything but gamma and the method is sqnn's default, which is what users get.
        model = SQNNClassifier(
            gamma=config["gamma"], method=method, random_state=SEED, device="cpu"
        )
        if epochs:
            model.set_params(epochs=epochs)
        model.fit(inputs(X, s), y, sensitive_features=s)
        return Fitted(
            lambda X_, s_: model.predict_proba(inputs(X_, s_))[:, 1],
            lambda X_, s_: model.binary_codes(inputs(X_, s_)),
        )

    return fit


def fit_plain_network(config, X, y, s, epochs):
    """sqnn's network with the binary layer taken out: the same feature layers and a
    linear head, trained by the same schedule (Adam, lr, batch size, epochs, seed)."""
    import torch

    from sqnn_cli.estimator import SQNNClassifier

    defaults = SQNNClassifier().get_params()
    epochs = epochs or defaults["epochs"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        layers, width = [], X.shape[1]
        for units in defaults["hidden"]:
            layers += [torch.nn.Linear(width, units), torch.nn.ReLU()]
            width = units
        network = torch.nn.Sequential(*layers, torch.nn.Linear(width, 1))
    features = torch.from_numpy(np.asarray(X, dtype=np.float32))
    labels = torch.from_numpy(y.astype(np.float32))
    optimizer = torch.optim.Adam(network.parameters(), lr=defaults["lr"])
    shuffle = torch.Generator().manual_seed(SEED)
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=shuffle)
        for start in range(0, len(labels), defaults["batch_size"]):
            rows = order[start : start + defaults["batch_size"]]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                network(features[rows]).squeeze(-1), labels[rows]
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    network.eval()

    def score(X_, s_):
        with torch.no_grad():
            inputs = torch.from_numpy(np.asarray(X_, dtype=np.float32))
            return torch.sigmoid(network(inputs).squeeze(-1)).double().numpy()

    return Fitted(score)


def fit_logistic(config, X, y, s, epochs):
    model = _logistic().fit(X, y)
    return Fitted(lambda X_, s_: model.predict_proba(X_)[:, 1])


def fit_logistic_with_s(config, X, y, s, epochs):
    """The unconstrained reference of the regime that sees S: S as an input, no fairness."""
    groups = np.unique(s)
    model = _logistic().fit(_with_s(groups, X, s), y)
    return Fitted(lambda X_, s_: model.predict_proba(_with_s(groups, X_, s_))[:, 1])


def _positive_proba(estimator, X: np.ndarray) -> np.ndarray:
    # fairlearn's oracle returns a one-class DummyClassifier when the reweighted labels
    # are all equal; its predict_proba then has a single column.
    classes = list(estimator.classes_)
    if 1 not in classes:
        return np.zeros(len(X))
    return estimator.predict_proba(X)[:, classes.index(1)]


def averaged_proba(model, X: np.ndarray) -> np.ndarray:
    """ExponentiatedGradient's graded score: sum over t of weights_[t] *
    predictors_[t].predict_proba(X), where _pmf_predict averages their 0/1 predictions."""
    X = _f64(X)
    used = model.weights_[model.weights_ > 0]
    total = sum(
        weight * _positive_proba(model.predictors_[t], X) for t, weight in used.items()
    )
    # The weights sum to 1 up to rounding, which can overshoot 1.
    return np.clip(total, 0.0, 1.0)


def fit_expgrad(constraint: str, *, score_by_averaged_proba: bool = False):
    def fit(config, X, y, s, epochs):
        from fairlearn.reductions import (
            DemographicParity,
            EqualizedOdds,
            ExponentiatedGradient,
        )

        moment = DemographicParity() if constraint == "dp" else EqualizedOdds()
        model = ExponentiatedGradient(
            _logistic(), constraints=moment, eps=config["eps"]
        )
        model.fit(_f64(X), y, sensitive_features=s)
        if score_by_averaged_proba:
            return Fitted(lambda X_, s_: averaged_proba(model, X_))
        # _pmf_predict is the randomized classifier's P(y=1), the only graded score it has;
        # mixing the classifiers' weights can overshoot 1 by a rounding error.
        return Fitted(
            lambda X_, s_: np.clip(model._pmf_predict(_f64(X_))[:, 1], 0.0, 1.0)
        )

    return fit


def fit_threshold(constraint: str):
    def fit(config, X, y, s, epochs):
        from fairlearn.postprocessing import ThresholdOptimizer

        model = ThresholdOptimizer(
            estimator=_logistic(),
            constraints=constraint,
            objective="balanced_accuracy_score",
            prefit=False,
            predict_method="predict_proba",
        )
        model.fit(_f64(X), y, sensitive_features=s)
        return Fitted(
            lambda X_, s_: np.clip(
                model._pmf_predict(_f64(X_), sensitive_features=s_)[:, 1], 0.0, 1.0
            )
        )

    return fit


def _train_step_without_nan(self, X, Y, A):
    """fairlearn 0.15's PytorchEngine.train_step with one change: it normalises the
    adversary's gradient by ``norm + finfo(float32).tiny``. The original adds
    ``finfo(float).tiny`` (float64's, 2e-308), which is 0 in float32, so a parameter
    whose adversary gradient is exactly 0 gets NaN weights; on Bank that kills every
    fit, whatever alpha."""
    import torch

    self.predictor_model.train()
    self.adversary_model.train()
    self.predictor_optimizer.zero_grad()
    self.adversary_optimizer.zero_grad()
    Y_hat = self.predictor_model(X)
    LP = self.predictor_loss(Y_hat, Y)
    LP.backward(retain_graph=True)
    dW_LP = [torch.clone(p.grad.detach()) for p in self.predictor_model.parameters()]
    self.predictor_optimizer.zero_grad()
    self.adversary_optimizer.zero_grad()
    if self.base.pass_y_:
        Y_hat = torch.cat((Y_hat, Y), dim=1)
    A_hat = self.adversary_model(Y_hat)
    LA = self.adversary_loss(A_hat, A)
    LA.backward()
    dW_LA = [torch.clone(p.grad.detach()) for p in self.predictor_model.parameters()]
    for i, p in enumerate(self.predictor_model.parameters()):
        unit_dW_LA = dW_LA[i] / (
            torch.norm(dW_LA[i]) + torch.finfo(dW_LA[i].dtype).tiny
        )
        proj = torch.sum(torch.inner(unit_dW_LA, dW_LP[i]))
        p.grad = dW_LP[i] - (proj * unit_dW_LA) - (self.base.alpha * dW_LA[i])
    self.predictor_optimizer.step()
    self.adversary_optimizer.step()
    return (LP.item(), LA.item())


def adversarial_classifier(alpha: float, epochs: int | None):
    """fairlearn's adversarial mitigation whose predictor has sqnn's feature layers and
    schedule, so that only the fairness mechanism differs."""
    from fairlearn.adversarial import AdversarialFairnessClassifier

    from sqnn_cli.estimator import SQNNClassifier

    defaults = SQNNClassifier().get_params()
    predictor = [part for units in defaults["hidden"] for part in (units, "leaky_relu")]
    return AdversarialFairnessClassifier(
        backend="torch",
        predictor_model=predictor,
        adversary_model=[3, "leaky_relu"],
        batch_size=defaults["batch_size"],
        epochs=epochs or defaults["epochs"],
        learning_rate=defaults["lr"],
        alpha=alpha,
        shuffle=True,
        random_state=SEED,
    )


def fit_adversarial(*, nan_fix: bool):
    def fit(config, X, y, s, epochs):
        from unittest import mock

        from fairlearn.adversarial._pytorch_engine import PytorchEngine

        model = adversarial_classifier(config["alpha"], epochs)
        if nan_fix:
            with mock.patch.object(
                PytorchEngine, "train_step", _train_step_without_nan
            ):
                model.fit(X, y, sensitive_features=s)
        else:
            model.fit(X, y, sensitive_features=s)
        # fairlearn 0.15 has neither predict_proba nor decision_function here; _raw_predict
        # is the predictor's sigmoid output, which predict() thresholds at 0.5.
        return Fitted(
            lambda X_, s_: np.clip(
                np.asarray(model._raw_predict(X_), dtype=float).reshape(-1), 0.0, 1.0
            )
        )

    return fit


GAMMAS = [0.0, 0.2, 0.4, 0.6, 0.8]
# VFAE's trade-off is steep: from gamma 0.1 its AUC is near 0.5 on COMPAS (README).
VFAE_GAMMAS = [0.0, 0.02, 0.05, 0.1, 0.2]
EPS = [0.01, 0.05, 0.1]
ALPHAS = [0.001, 0.01, 0.1, 1.0]  # from nearly plain to an adversary that dominates
NONE: list[dict[str, Any]] = [{}]
AVERAGED_PROBA_NOTE = (
    "ExponentiatedGradient scored by its predictors' predict_proba averaged with its "
    "weights_, where expgrad_dp and expgrad_eo average their 0/1 predictions"
)

METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method(
            "sqnn_bernoulli",
            [{"gamma": g} for g in GAMMAS],
            [{"gamma": 0.0}, {"gamma": 0.4}],
            fit_sqnn("bernoulli"),
        ),
        Method(
            "sqnn_joint",
            [{"gamma": g} for g in GAMMAS],
            [{"gamma": 0.0}, {"gamma": 0.4}],
            fit_sqnn("joint"),
        ),
        Method(
            "sqnn_bernoulli_s",
            [{"gamma": g} for g in GAMMAS],
            [{"gamma": 0.0}, {"gamma": 0.4}],
            fit_sqnn("bernoulli", sensitive_as_feature=True),
            sees_s=True,
            note="S is an input (sqnn train --sensitive-as-feature), so like ThresholdOptimizer it needs S to score",
        ),
        # The paper's baselines on sqnn's network (--method adversarial, vfae): peers of
        # sqnn's own methods, never seeing S when scoring.
        Method(
            "advcls",
            [{"gamma": g} for g in GAMMAS],
            [{"gamma": 0.0}, {"gamma": 0.4}],
            fit_sqnn("adversarial"),
            note="AdvCls (Xie et al. 2017) on sqnn's network: sqnn train --method adversarial",
        ),
        Method(
            "vfae",
            [{"gamma": g} for g in VFAE_GAMMAS],
            [{"gamma": 0.0}, {"gamma": 0.05}],
            fit_sqnn("vfae"),
            note="VFAE (Louizos et al. 2016) on sqnn's network: sqnn train --method vfae",
        ),
        Method("plain_network", NONE, NONE, fit_plain_network),
        Method("logistic", NONE, NONE, fit_logistic),
        Method(
            "expgrad_dp", [{"eps": e} for e in EPS], [{"eps": 0.05}], fit_expgrad("dp")
        ),
        Method(
            "expgrad_dp_proba",
            [{"eps": e} for e in EPS],
            [{"eps": 0.05}],
            fit_expgrad("dp", score_by_averaged_proba=True),
            note=AVERAGED_PROBA_NOTE,
        ),
        Method(
            "expgrad_eo", [{"eps": e} for e in EPS], [{"eps": 0.05}], fit_expgrad("eo")
        ),
        Method(
            "expgrad_eo_proba",
            [{"eps": e} for e in EPS],
            [{"eps": 0.05}],
            fit_expgrad("eo", score_by_averaged_proba=True),
            note=AVERAGED_PROBA_NOTE,
        ),
        Method("logistic_s", NONE, NONE, fit_logistic_with_s, sees_s=True),
        Method(
            "threshold_dp",
            NONE,
            NONE,
            fit_threshold("demographic_parity"),
            sees_s=True,
        ),
        Method(
            "threshold_eo", NONE, NONE, fit_threshold("equalized_odds"), sees_s=True
        ),
        Method(
            "adversarial",
            [{"alpha": a} for a in ALPHAS],
            [{"alpha": 1.0}],
            fit_adversarial(nan_fix=False),
        ),
        Method(
            "adversarial_nan_fix",
            [{"alpha": a} for a in ALPHAS],
            [{"alpha": 1.0}],
            fit_adversarial(nan_fix=True),
            note="fairlearn's adversarial classifier with its float32 division-by-zero fixed "
            "(see _train_step_without_nan); not part of the main run",
        ),
    ]
}


# -- protocol ------------------------------------------------------------------------


def encode(train: pd.DataFrame, *others: pd.DataFrame) -> list[np.ndarray]:
    """Fit the encoder on the training part only, then transform every part with it."""
    encoder = TabularEncoder().fit(train)
    return [encoder.transform(part)[0] for part in (train, *others)]


def criterion(result) -> float:
    """The paper's selection score: AUC + (1 - GPA) + (1 - AUDC); higher is better."""
    value = result.auc + (1.0 - result.gpa) + (1.0 - result.audc)
    # A NaN (a degenerate inner fold) must lose, not silently win or poison max().
    return value if math.isfinite(value) else -math.inf


# What a configuration is chosen by: the paper's criterion (largest), or, with
# --selection per-metric, the very metric a column reports (smallest).
SELECTIONS = ("criterion", "per-metric")
PER_METRIC = ("d_gpa", "d_audc")


def select(
    method: Method, grid, features, y, s, inner_folds: int, epochs: int
) -> tuple[dict, list[dict]]:
    """Pick a configuration on inner folds of the training part; never sees the test fold.
    Each trial keeps its inner-fold means of every metric, so a per-metric choice
    (`choose`) reads the same fits."""
    if len(grid) == 1:
        return grid[0], []  # nothing to choose, so no reason to pay for inner fits
    splitter = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=SEED)
    inner_splits = list(splitter.split(features, y))
    trials = []
    for config in grid:
        trial: dict[str, Any] = {"config": config}
        try:
            results = []
            for fit_idx, val_idx in inner_splits:
                X_fit, X_val = encode(features.iloc[fit_idx], features.iloc[val_idx])
                fitted = method.fit(config, X_fit, y[fit_idx], s[fit_idx], epochs)
                results.append(
                    evaluate_scores(
                        y[val_idx],
                        fitted.score(X_val, s[val_idx]),
                        sensitive_features=s[val_idx],
                    )
                )
            trial["inner_criterion"] = float(np.mean([criterion(r) for r in results]))
            trial["inner_means"] = {
                name: float(np.mean([getattr(r, name) for r in results]))
                for name in METRICS
            }
        except Exception as error:  # noqa: BLE001 -- a configuration that breaks the peer (e.g. NaN training) loses, the others still compete
            trial.update(
                inner_criterion=-math.inf, error=f"{type(error).__name__}: {error}"
            )
        trials.append(trial)
    if not any(math.isfinite(t["inner_criterion"]) for t in trials):
        raise RuntimeError(
            "every configuration failed: "
            + "; ".join(t.get("error", "") for t in trials)
        )
    return choose(trials, "criterion"), trials


def choose(trials: list[dict], by: str) -> dict:
    """The configuration of the trial with the largest inner criterion (by="criterion")
    or the smallest inner-fold mean of the metric `by` names (a d_gpa or d_audc: lower
    is better). A failed trial, or one whose mean is NaN, never wins; ties go to the
    earlier configuration of the grid."""
    if by == "criterion":
        values = [t["inner_criterion"] for t in trials]
    else:
        values = [-t.get("inner_means", {}).get(by, math.nan) for t in trials]
    values = [v if math.isfinite(v) else -math.inf for v in values]
    return trials[int(np.argmax(values))]["config"]


@functools.cache
def load(name: str) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    return DATASETS[name]()


@functools.cache
def outer_folds(name: str, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    features, y, _ = load(name)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=SEED)
    return list(splitter.split(features, y))


def scores_of(result) -> dict[str, float]:
    return {name: float(getattr(result, name)) for name in METRICS}


def audit_codes(fitted: Fitted, X_train, X_test, s_train, s_test, trees: int) -> dict:
    """The paper's representation audit: a forest learns S from the training part's
    codes and is scored on the test part's."""
    from sqnn_cli.audit import forest_audit

    audit = forest_audit(
        "sampled code",
        fitted.codes(X_train, s_train),
        fitted.codes(X_test, s_test),
        s_train,
        s_test,
        trees=trees,
        seed=SEED,
        n_jobs=1,
        progress=None,
    )
    return {"adrg": audit.adrg, "leakage_auc": audit.leakage_auc}


def fit_and_score(method: Method, config: dict, parts, epochs) -> tuple[Fitted, dict]:
    """Fit one configuration on the outer training part; its test-fold scores."""
    X_train, X_test, y_train, y_test, s_train, s_test = parts
    started = time.perf_counter()
    fitted = method.fit(config, X_train, y_train, s_train, epochs)
    seconds = time.perf_counter() - started
    result = evaluate_scores(
        y_test, fitted.score(X_test, s_test), sensitive_features=s_test
    )
    return fitted, {"fit_seconds": seconds, **scores_of(result)}


def run_method(method: Method, dataset: str, fold: int, args) -> dict:
    features, y, s = load(dataset)
    train_idx, test_idx = outer_folds(dataset, args.outer_folds)[fold]
    grid = method.quick_grid if args.quick else method.grid
    started = time.perf_counter()
    config, trials = select(
        method,
        grid,
        features.iloc[train_idx],
        y[train_idx],
        s[train_idx],
        args.inner_folds,
        args.epochs,
    )
    record: dict[str, Any] = {
        "config": config,
        "inner_trials": trials,
        "selection_seconds": time.perf_counter() - started,
    }
    X_train, X_test = encode(features.iloc[train_idx], features.iloc[test_idx])
    parts = (X_train, X_test, y[train_idx], y[test_idx], s[train_idx], s[test_idx])
    fitted, scores = fit_and_score(method, config, parts, args.epochs)
    record.update(scores)
    if fitted.codes is not None and args.audit_trees:
        record.update(
            audit_codes(
                fitted, X_train, X_test, s[train_idx], s[test_idx], args.audit_trees
            )
        )
    if args.selection == "per-metric":
        record["by_metric"] = per_metric_records(method, trials, record, parts, args)
    return record


def per_metric_records(method: Method, trials, record: dict, parts, args) -> dict:
    """For each of d_gpa and d_audc, the configuration with the lowest inner-fold mean
    of it, refitted on the outer training part and scored on the test fold. The inner
    fits are `select`'s; a configuration already fitted on the outer part is not fitted
    again."""
    outer = {json.dumps(record["config"], sort_keys=True): scores_of_record(record)}
    chosen = {}
    for metric in PER_METRIC:
        config = choose(trials, metric) if trials else record["config"]
        key = json.dumps(config, sort_keys=True)
        if key not in outer:
            outer[key] = fit_and_score(method, config, parts, args.epochs)[1]
        chosen[metric] = {"config": config, **outer[key]}
    return chosen


def scores_of_record(record: dict) -> dict:
    return {k: record[k] for k in ("fit_seconds", *METRICS)}


def run_sweep_point(dataset: str, fold: int, gamma: float, args) -> dict:
    """One fold of the default `sqnn sweep-gamma` grid: gamma is the only knob turned."""
    features, y, s = load(dataset)
    train_idx, test_idx = outer_folds(dataset, args.outer_folds)[fold]
    X_train, X_test = encode(features.iloc[train_idx], features.iloc[test_idx])
    fitted = METHODS["sqnn_bernoulli"].fit(
        {"gamma": gamma}, X_train, y[train_idx], s[train_idx], args.epochs
    )
    result = evaluate_scores(
        y[test_idx], fitted.score(X_test, s[test_idx]), sensitive_features=s[test_idx]
    )
    return {"gamma": gamma, "fold": fold, **scores_of(result)}


@dataclass(frozen=True)
class Task:
    dataset: str
    fold: int
    method: str  # a METHODS key, or SWEEP
    gamma: float | None = None  # SWEEP only

    def label(self) -> str:
        what = f"sweep gamma={self.gamma:g}" if self.method == SWEEP else self.method
        return f"[{self.dataset} fold {self.fold}] {what}"


SWEEP = "sweep"


def run_task(task: Task, args) -> dict:
    started = time.perf_counter()
    try:
        if task.method == SWEEP:
            record = run_sweep_point(task.dataset, task.fold, task.gamma, args)
        else:
            record = {
                "fold": task.fold,
                **run_method(METHODS[task.method], task.dataset, task.fold, args),
            }
    except Exception as error:  # noqa: BLE001 -- one broken peer must not sink the whole benchmark
        record = {
            "fold": task.fold,
            "gamma": task.gamma,
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }
    record["task_seconds"] = time.perf_counter() - started
    return record


def _one_thread_worker() -> None:
    # Tasks run side by side, one per core; a task that spread its BLAS or torch threads
    # over the other's core would slow both many times over (oversubscription).
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    threadpool_limits(1)


def plan(args) -> list[Task]:
    tasks = [
        Task(dataset, fold, method)
        for dataset in args.datasets
        for fold in range(args.outer_folds)
        for method in args.methods
    ]
    if args.sweep_steps:
        from sqnn_cli.sweep import gamma_grid

        tasks += [
            Task(dataset, fold, SWEEP, gamma)
            for dataset in args.datasets
            for fold in range(args.outer_folds)
            for gamma in gamma_grid(None, args.sweep_steps)
        ]
    # Largest datasets and slowest methods first, so the pool does not end on one long task.
    slow_first = {name: rank for rank, name in enumerate(SLOW_FIRST)}
    return sorted(
        tasks,
        key=lambda t: (
            -len(load(t.dataset)[1]),
            slow_first.get(t.method, len(SLOW_FIRST)),
        ),
    )


SLOW_FIRST = (
    "vfae",
    "expgrad_eo",
    "expgrad_eo_proba",
    "expgrad_dp",
    "expgrad_dp_proba",
    "adversarial",
    "sqnn_joint",
    "sqnn_bernoulli",
    "sqnn_bernoulli_s",
)


def status_line(task: Task, record: dict) -> str:
    if "error" in record:
        return f"{task.label()}: {record['error']}"
    config = "" if task.method == SWEEP else f" config={record['config']}"
    return (
        f"{task.label()}: auc={record['auc']:.3f} gpa={record['gpa']:.3f} audc={record['audc']:.3f}{config} "
        f"({record['task_seconds']:.0f} s)"
    )


def run_all(args, output: dict) -> None:
    """Run every task, `--jobs` at a time, filing each record as it finishes."""
    for dataset in args.datasets:
        features, y, s = load(dataset)  # loaded before forking, so workers share it
        output["datasets"][dataset] = {
            "rows": len(y),
            "features": list(features.columns),
            "groups": {
                str(k): int(v) for k, v in zip(*np.unique(s, return_counts=True))
            },
            "positive_rate": float(y.mean()),
            "methods": {name: [] for name in args.methods},
            "sweep": [],
        }
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=_one_thread_worker
    ) as pool:
        futures = {pool.submit(run_task, task, args): task for task in plan(args)}
        for future in as_completed(futures):
            task = futures[future]
            record = future.result()
            result = output["datasets"][task.dataset]
            (
                result["sweep"]
                if task.method == SWEEP
                else result["methods"][task.method]
            ).append(record)
            print(status_line(task, record), file=sys.stderr, flush=True)
            # Written after every task so a long run that dies keeps what it finished.
            write_json(args.out, output)


def write_json(path: Path, output: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plain(output), indent=2, allow_nan=False) + "\n")


# -- reporting -----------------------------------------------------------------------

COLUMNS = [  # (key, header, higher is better)
    ("auc", "AUC", True),
    ("gpa", "GPA", False),
    ("audc", "AUDC", False),
    ("dp_difference", "DP", False),
    ("d_gpa", "dGPA", False),
    ("d_audc", "dAUDC", False),
    ("adrg", "ADRG", False),
    ("leakage_auc", "leakage AUC", False),
    ("fit_seconds", "fit s", False),
]
SQNN_METHODS = ("sqnn_bernoulli", "sqnn_joint", "sqnn_bernoulli_s")


def summarise(records: list[dict]) -> dict[str, tuple[float, float]]:
    """Mean and std over the folds that finished, for every column they all have."""
    ok = [r for r in records if "error" not in r]
    return {
        key: (float(np.mean([r[key] for r in ok])), float(np.std([r[key] for r in ok])))
        for key, _, _ in COLUMNS
        if ok and all(key in r for r in ok)
    }


def configurations(records: list[dict]) -> str:
    chosen = sorted(
        {
            json.dumps(r["config"]) if r["config"] else "fixed"
            for r in records
            if "config" in r
        }
    )
    return ", ".join(chosen) or "-"


def markdown_table(dataset: str, result: dict) -> str:
    """One table per information regime: a method is compared only with those that see
    S when scoring exactly when it does."""
    lines = [
        f"### {dataset} ({result['rows']} rows, groups {result['groups']}, positive rate {result['positive_rate']:.3f})"
    ]
    for sees_s, regime in REGIMES.items():
        names = [name for name in result["methods"] if METHODS[name].sees_s == sees_s]
        if not names:
            continue
        summaries = {name: summarise(result["methods"][name]) for name in names}
        lines += [
            "",
            f"Regime: the scorer {regime}.",
            "",
            *regime_rows(summaries, result["methods"]),
            "",
            *goal_lines(summaries),
        ]
    return "\n".join(lines)


def regime_rows(summaries: dict[str, dict], records: dict[str, list[dict]]) -> list[str]:
    """The markdown rows of one regime's table, the best of each column in bold."""
    best = {}
    for key, _, higher in COLUMNS:
        means = [
            s[key][0]
            for s in summaries.values()
            if key in s and math.isfinite(s[key][0])
        ]
        if means:
            best[key] = max(means) if higher else min(means)
    lines = [
        "| method | configuration(s) | " + " | ".join(h for _, h, _ in COLUMNS) + " |",
        "|" + "---|" * (len(COLUMNS) + 2),
    ]
    for name, summary in summaries.items():
        cells = []
        for key, _, _ in COLUMNS:
            if key not in summary:
                cells.append("-")
                continue
            mean, std = summary[key]
            digits = 2 if key == "fit_seconds" else 3
            text = f"{mean:.{digits}f} ± {std:.{digits}f}"
            cells.append(f"**{text}**" if mean == best.get(key) else text)
        failed = sum("error" in r for r in records[name])
        suffix = f" ({failed} failed fold(s))" if failed else ""
        lines.append(
            f"| {name}{suffix} | {configurations(records[name])} | "
            + " | ".join(cells)
            + " |"
        )
    return lines


def goal_lines(summaries: dict[str, dict]) -> list[str]:
    """Issue 6's goal: sqnn's selected model beats every peer's on mean dGPA and dAUDC;
    `summaries` holds one information regime's methods (issue 16)."""
    peers = {name: s for name, s in summaries.items() if name not in SQNN_METHODS and s}
    lines = []
    for name in SQNN_METHODS:
        ours = summaries.get(name)
        if not ours or not peers:
            continue
        verdicts = []
        for key in ("d_gpa", "d_audc"):
            rival, theirs = min(peers.items(), key=lambda item: item[1][key][0])
            margin = theirs[key][0] - ours[key][0]
            verdicts.append(
                f"{key} {ours[key][0]:.3f} vs best peer {rival} {theirs[key][0]:.3f}: "
                + ("wins" if margin > 0 else "loses")
                + f" by {abs(margin):.3f}"
            )
        lines.append(f"- {name}: " + "; ".join(verdicts))
    return lines


def per_metric_table(dataset: str, result: dict) -> str:
    """--selection per-metric: per regime, each column reports the configuration chosen
    on the inner folds by that column's own metric (every method alike), with the AUC
    that configuration reached on the test folds, and the goal read off those columns."""
    lines = [f"### {dataset}: each column's configuration chosen by its own metric"]
    for sees_s, regime in REGIMES.items():
        names = [
            name
            for name, records in result["methods"].items()
            if METHODS[name].sees_s == sees_s
            and any("by_metric" in r for r in records)
        ]
        if not names:
            continue
        chosen = {
            name: {
                metric: [
                    r["by_metric"][metric]
                    for r in result["methods"][name]
                    if "by_metric" in r
                ]
                for metric in PER_METRIC
            }
            for name in names
        }
        lines += [
            "",
            f"Regime: the scorer {regime}.",
            "",
            *per_metric_rows(chosen),
            "",
        ]
        summaries = {
            name: {metric: summarise(rows)[metric] for metric, rows in by.items()}
            for name, by in chosen.items()
        }
        lines += goal_lines(summaries)
    return "\n".join(lines)


def per_metric_rows(chosen: dict[str, dict[str, list[dict]]]) -> list[str]:
    """Rows of method | dGPA's configuration(s) | dGPA | AUC there | the same for dAUDC."""
    best = {
        metric: min(summarise(by[metric])[metric][0] for by in chosen.values())
        for metric in PER_METRIC
    }
    lines = [
        "| method | dGPA chosen by dGPA | dGPA | AUC there | dAUDC chosen by dAUDC | dAUDC | AUC there |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, by in chosen.items():
        cells = []
        for metric in PER_METRIC:
            summary = summarise(by[metric])
            mean, std = summary[metric]
            text = f"{mean:.3f} ± {std:.3f}"
            cells += [
                configurations(by[metric]),
                f"**{text}**" if mean == best[metric] else text,
                "{:.3f} ± {:.3f}".format(*summary["auc"]),
            ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def sweep_table(dataset: str, records: list[dict]) -> str:
    """Fold means over the default gamma grid, and how dependably gamma moves GPA."""
    from scipy import stats

    ok = [r for r in records if "error" not in r]
    if not ok:
        return f"### {dataset}: no sweep results"
    gammas = sorted({r["gamma"] for r in ok})
    means = {
        g: {
            k: float(np.mean([r[k] for r in ok if r["gamma"] == g]))
            for k in ("auc", "gpa", "audc", "d_gpa", "d_audc")
        }
        for g in gammas
    }
    lines = [
        f"### {dataset}: default sqnn over gamma ({len(ok)} runs, {len(records) - len(ok)} failed)",
        "",
        "| gamma | AUC | GPA | AUDC | dGPA | dAUDC |",
        "|---:|---|---|---|---|---|",
    ]
    for g in gammas:
        m = means[g]
        lines.append(
            f"| {g:g} | {m['auc']:.3f} | {m['gpa']:.3f} | {m['audc']:.3f} | {m['d_gpa']:.3f} | {m['d_audc']:.3f} |"
        )
    one_minus_gpa = [1.0 - means[g]["gpa"] for g in gammas]
    rho_gpa = stats.spearmanr(gammas, one_minus_gpa).statistic
    rho_auc = stats.spearmanr(gammas, [means[g]["auc"] for g in gammas]).statistic
    pearson_gpa = stats.pearsonr(gammas, one_minus_gpa).statistic
    verdict = "meets" if rho_gpa >= 0.95 else "misses"
    lines += [
        "",
        (
            f"Spearman(gamma, 1 - GPA) = {rho_gpa:.3f} ({verdict} the 0.95 goal); "
            f"Pearson = {pearson_gpa:.3f}; Spearman(gamma, AUC) = {rho_auc:.3f}."
        ),
    ]
    return "\n".join(lines)


def machine_line() -> dict[str, str]:
    import fairlearn
    import sklearn
    import torch

    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": str(os.cpu_count()),
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "fairlearn": fairlearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--outer-folds", type=int, default=3)
    parser.add_argument("--inner-folds", type=int, default=2)
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs of sqnn, the plain network and the adversarial model (default: sqnn's)",
    )
    parser.add_argument(
        "--methods",
        default=",".join(name for name in METHODS if name != "adversarial_nan_fix"),
        help="comma list of: "
        + ", ".join(METHODS)
        + " (default: all but adversarial_nan_fix)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="one or two configurations per method"
    )
    parser.add_argument(
        "--audit-trees",
        type=int,
        default=1000,
        help="trees of the representation audit (0: no audit)",
    )
    parser.add_argument(
        "--sweep-steps",
        type=int,
        default=11,
        help="gammas of the default-sqnn sweep (0: no sweep)",
    )
    parser.add_argument(
        "--jobs", type=int, default=os.cpu_count() or 1, help="tasks run side by side"
    )
    parser.add_argument(
        "--selection",
        choices=SELECTIONS,
        default="criterion",
        help="criterion: every column from the configuration with the best inner-fold "
        "AUC + (1 - GPA) + (1 - AUDC); per-metric: also, per method, the dGPA and dAUDC "
        "columns each from the configuration with the lowest inner-fold mean of that metric",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "peers.json")
    args = parser.parse_args(argv)
    for option, known in (("datasets", DATASETS), ("methods", METHODS)):
        chosen = [v.strip() for v in getattr(args, option).split(",") if v.strip()]
        unknown = [v for v in chosen if v not in known]
        if unknown or not chosen:
            parser.error(
                f"--{option}: unknown {unknown}; choose from {', '.join(known)}"
            )
        setattr(args, option, chosen)
    if args.jobs < 1 or args.outer_folds < 2 or args.inner_folds < 2:
        parser.error(
            "--jobs must be positive and --outer-folds, --inner-folds at least 2"
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    output: dict[str, Any] = {
        "command": " ".join(
            [
                "python",
                "benchmarks/peers.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "protocol": {
            "outer_folds": args.outer_folds,
            "inner_folds": args.inner_folds,
            "epochs": args.epochs,
            "seed": SEED,
            "quick": args.quick,
            "jobs": args.jobs,
            "selection": "max mean over inner folds of AUC + (1 - GPA) + (1 - AUDC)"
            + (
                "; by_metric: min mean over inner folds of d_gpa, of d_audc"
                if args.selection == "per-metric"
                else ""
            ),
            "grids": {
                name: (METHODS[name].quick_grid if args.quick else METHODS[name].grid)
                for name in args.methods
            },
            "audit_trees": args.audit_trees,
            "sweep_steps": args.sweep_steps,
            "regimes": {name: REGIMES[METHODS[name].sees_s] for name in args.methods},
            "notes": {
                name: METHODS[name].note for name in args.methods if METHODS[name].note
            },
        },
        "machine": machine_line(),
        "datasets": {},
    }
    run_all(args, output)
    for result in output["datasets"].values():
        for records in result["methods"].values():
            records.sort(key=lambda r: r["fold"])
        result["sweep"].sort(key=lambda r: (r["gamma"], r["fold"]))
    output["wall_seconds"] = time.perf_counter() - started
    write_json(args.out, output)

    for name, result in output["datasets"].items():
        print(markdown_table(name, result), end="\n\n")
        if args.selection == "per-metric":
            print(per_metric_table(name, result), end="\n\n")
        if args.sweep_steps:
            print(sweep_table(name, result["sweep"]), end="\n\n")
    for name, note in output["protocol"]["notes"].items():
        print(f"Note, {name}: {note}.")
    machine = output["machine"]
    print(
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs; Python {machine['python']}, "
        f"torch {machine['torch']}, scikit-learn {machine['sklearn']}, fairlearn {machine['fairlearn']}. "
        f"{args.jobs} tasks side by side, one thread each. Wall time {output['wall_seconds']:.0f} s. "
        f"Command: `{output['command']}`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
