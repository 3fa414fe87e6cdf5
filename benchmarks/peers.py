"""sqnn against its peers: fairness-aware and plain classifiers under one protocol.

Usage (from the repository root, after `pip install -e .`):

    python benchmarks/peers.py --datasets compas,adult,bank --outer-folds 3 \
        --inner-folds 2 --out benchmarks/peers.json

    # a quick smoke run
    python benchmarks/peers.py --datasets compas --outer-folds 2 --inner-folds 2 \
        --epochs 5 --quick --out /tmp/peers-smoke.json

Options: --datasets (compas,adult,bank), --outer-folds, --inner-folds, --epochs
(training epochs of the neural methods), --methods (comma list, a subset of
METHODS below), --quick (one or two configurations per method), --out (JSON).

Protocol (DESIGN.md §5): outer StratifiedKFold on y (seed 0); all preprocessing
(`TabularEncoder`) is fitted on the training part only; S is never a feature.
Each method has a small configuration grid. A configuration is scored on inner
StratifiedKFold folds of the training part by the paper's criterion,
AUC + (1 - GPA) + (1 - AUDC) averaged over the inner folds; the best one is
refitted on the whole training part and scored once on the outer test fold,
which is never used for selection. Metrics come from `sqnn_cli.metrics`.

Writes every fold's numbers and the chosen configuration to --out and prints,
per dataset, a markdown table of mean ± std over the outer folds (best of each
column in bold) and a line naming the machine and library versions.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from sklearn.neural_network import MLPClassifier

from sqnn_cli.metrics import evaluate_scores
from sqnn_cli.preprocess import TabularEncoder

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "sample_data"
SEED = 0
METRICS = ("auc", "gpa", "audc", "dp_difference", "d_gpa", "d_audc")


# -- datasets (DESIGN.md §5) ---------------------------------------------------------


def load_compas() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / "compas.csv")
    # The paper kept only the two largest groups, making S binary.
    frame = frame[frame["race"].isin(["African-American", "Caucasian"])].reset_index(
        drop=True
    )
    features = frame[["sex", "age_cat", "c_charge_degree", "priors_count"]]
    return (
        features,
        frame["two_year_recid"].to_numpy(dtype=np.int64),
        frame["race"].to_numpy(dtype=str),
    )


def load_adult() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = pd.read_csv(DATA / "adult.csv.gz")
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
    "adult": load_adult,
    "bank": load_bank,
}


# -- methods -------------------------------------------------------------------------
# A method is a list of configurations and a function (config, X, y, s, epochs) that
# fits on a training part and returns a scorer (X, s) -> P(y=1), so that methods which
# need S at prediction time (ThresholdOptimizer) fit the same mould as those that don't.

Scorer = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    grid: list[dict[str, Any]]
    quick_grid: list[dict[str, Any]]
    fit: Callable[[dict[str, Any], np.ndarray, np.ndarray, np.ndarray, int], Scorer]
    note: str = ""


def _logistic() -> LogisticRegression:
    return LogisticRegression(max_iter=1000)


def _f64(X: np.ndarray) -> np.ndarray:
    # fairlearn 0.15 writes float64 values into a pandas Series typed by the estimator's
    # float32 output, which pandas 3 refuses (TypeError "Invalid value ... for dtype
    # 'float32'"); float64 inputs keep every intermediate float64.
    return np.asarray(X, dtype=np.float64)


def fit_sqnn(method: str):
    def fit(config, X, y, s, epochs):
        from sqnn_cli.estimator import SQNNClassifier

        model = SQNNClassifier(
            gamma=config["gamma"],
            method=method,
            epochs=epochs,
            random_state=SEED,
            device="cpu",
        )
        model.fit(X, y, sensitive_features=s)
        return lambda X_, s_: model.predict_proba(X_)[:, 1]

    return fit


def fit_mlp(config, X, y, s, epochs):
    model = MLPClassifier(
        hidden_layer_sizes=(64, 64), batch_size=256, max_iter=epochs, random_state=SEED
    )
    with warnings.catch_warnings():
        # max_iter is tied to --epochs for parity with sqnn, so stopping short is expected.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(X, y)
    return lambda X_, s_: model.predict_proba(X_)[:, 1]


def fit_logistic(config, X, y, s, epochs):
    model = _logistic().fit(X, y)
    return lambda X_, s_: model.predict_proba(X_)[:, 1]


def fit_expgrad(constraint: str):
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
        # _pmf_predict is the randomized classifier's P(y=1), the only graded score it has;
        # mixing the classifiers' weights can overshoot 1 by a rounding error.
        return lambda X_, s_: np.clip(model._pmf_predict(_f64(X_))[:, 1], 0.0, 1.0)

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
        return lambda X_, s_: np.clip(
            model._pmf_predict(_f64(X_), sensitive_features=s_)[:, 1], 0.0, 1.0
        )

    return fit


def fit_adversarial(config, X, y, s, epochs):
    from fairlearn.adversarial import AdversarialFairnessClassifier

    model = AdversarialFairnessClassifier(
        backend="torch",
        predictor_model=[64, "leaky_relu"],
        adversary_model=[3, "leaky_relu"],
        batch_size=256,
        epochs=epochs,
        alpha=config["alpha"],
        random_state=SEED,
    )
    model.fit(X, y, sensitive_features=s)
    # fairlearn 0.15 has neither predict_proba nor decision_function here; _raw_predict
    # is the predictor's sigmoid output, which predict() thresholds at 0.5.
    return lambda X_, s_: np.clip(
        np.asarray(model._raw_predict(X_), dtype=float).reshape(-1), 0.0, 1.0
    )


GAMMAS = [0.0, 0.1, 0.2, 0.4, 0.6]
EPS = [0.01, 0.05, 0.1]
ALPHAS = [0.1, 1.0, 10.0]
NONE: list[dict[str, Any]] = [{}]

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
            "mlp",
            NONE,
            NONE,
            fit_mlp,
            note="approximation: sklearn MLPClassifier(64, 64), max_iter=epochs, not sqnn's own network "
            "without the binary layer (different optimiser defaults and no sqnn training loop)",
        ),
        Method("logistic", NONE, NONE, fit_logistic),
        Method(
            "expgrad_dp", [{"eps": e} for e in EPS], [{"eps": 0.05}], fit_expgrad("dp")
        ),
        Method(
            "expgrad_eo", [{"eps": e} for e in EPS], [{"eps": 0.05}], fit_expgrad("eo")
        ),
        Method("threshold_dp", NONE, NONE, fit_threshold("demographic_parity")),
        Method("threshold_eo", NONE, NONE, fit_threshold("equalized_odds")),
        Method(
            "adversarial",
            [{"alpha": a} for a in ALPHAS],
            [{"alpha": 1.0}],
            fit_adversarial,
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


def select(
    method: Method, grid, features, y, s, inner_folds: int, epochs: int
) -> tuple[dict, list[dict]]:
    """Pick a configuration on inner folds of the training part; never sees the test fold."""
    if len(grid) == 1:
        return grid[0], []  # nothing to choose, so no reason to pay for inner fits
    splitter = StratifiedKFold(n_splits=inner_folds, shuffle=True, random_state=SEED)
    inner_splits = list(splitter.split(features, y))
    trials = []
    for config in grid:
        scores = []
        for fit_idx, val_idx in inner_splits:
            X_fit, X_val = encode(features.iloc[fit_idx], features.iloc[val_idx])
            scorer = method.fit(config, X_fit, y[fit_idx], s[fit_idx], epochs)
            result = evaluate_scores(
                y[val_idx], scorer(X_val, s[val_idx]), sensitive_features=s[val_idx]
            )
            scores.append(criterion(result))
        trials.append({"config": config, "inner_criterion": float(np.mean(scores))})
    best = max(trials, key=lambda t: t["inner_criterion"])
    return best["config"], trials


def run_method(
    method: Method, grid, features, y, s, train_idx, test_idx, inner_folds, epochs
) -> dict:
    record: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        config, trials = select(
            method,
            grid,
            features.iloc[train_idx],
            y[train_idx],
            s[train_idx],
            inner_folds,
            epochs,
        )
        record.update(
            config=config,
            inner_trials=trials,
            selection_seconds=time.perf_counter() - started,
        )
        X_train, X_test = encode(features.iloc[train_idx], features.iloc[test_idx])
        started = time.perf_counter()
        scorer = method.fit(config, X_train, y[train_idx], s[train_idx], epochs)
        record["fit_seconds"] = time.perf_counter() - started
        result = evaluate_scores(
            y[test_idx], scorer(X_test, s[test_idx]), sensitive_features=s[test_idx]
        )
        record.update({name: float(getattr(result, name)) for name in METRICS})
    except Exception as error:  # noqa: BLE001 -- one broken peer must not sink the whole benchmark
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
    return record


def run_dataset(name: str, methods: list[Method], args) -> dict:
    features, y, s = DATASETS[name]()
    outer = StratifiedKFold(n_splits=args.outer_folds, shuffle=True, random_state=SEED)
    folds: dict[str, list[dict]] = {m.name: [] for m in methods}
    for fold, (train_idx, test_idx) in enumerate(outer.split(features, y)):
        for method in methods:
            grid = method.quick_grid if args.quick else method.grid
            record = run_method(
                method,
                grid,
                features,
                y,
                s,
                train_idx,
                test_idx,
                args.inner_folds,
                args.epochs,
            )
            record["fold"] = fold
            folds[method.name].append(record)
            status = (
                record.get("error")
                or f"auc={record['auc']:.3f} d_gpa={record['d_gpa']:.3f} config={record['config']}"
            )
            print(
                f"[{name} fold {fold}] {method.name}: {status}",
                file=sys.stderr,
                flush=True,
            )
    return {
        "rows": len(y),
        "features": list(features.columns),
        "groups": {str(k): int(v) for k, v in zip(*np.unique(s, return_counts=True))},
        "positive_rate": float(y.mean()),
        "methods": folds,
    }


# -- reporting -----------------------------------------------------------------------

COLUMNS = [  # (key, header, higher is better)
    ("auc", "AUC", True),
    ("gpa", "GPA", False),
    ("audc", "AUDC", False),
    ("dp_difference", "DP", False),
    ("d_gpa", "dGPA", False),
    ("d_audc", "dAUDC", False),
    ("fit_seconds", "fit s", False),
]


def summarise(records: list[dict]) -> dict[str, tuple[float, float]]:
    ok = [r for r in records if "error" not in r]
    if not ok:
        return {}
    return {
        key: (float(np.mean([r[key] for r in ok])), float(np.std([r[key] for r in ok])))
        for key, _, _ in COLUMNS
    }


def markdown_table(dataset: str, result: dict) -> str:
    summaries = {
        name: summarise(records) for name, records in result["methods"].items()
    }
    best = {}
    for key, _, higher in COLUMNS:
        means = [
            s[key][0] for s in summaries.values() if s and math.isfinite(s[key][0])
        ]
        if means:
            best[key] = max(means) if higher else min(means)
    header = (
        "| method | configuration(s) | " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    )
    lines = [
        f"### {dataset} ({result['rows']} rows, groups {result['groups']})",
        "",
        header,
        "|" + "---|" * (len(COLUMNS) + 2),
    ]
    for name, records in result["methods"].items():
        configs = (
            ", ".join(
                sorted(
                    {
                        json.dumps(r["config"]) if r["config"] else "fixed"
                        for r in records
                        if "config" in r
                    }
                )
            )
            or "-"
        )
        summary = summaries[name]
        errors = [r["error"] for r in records if "error" in r]
        cells = []
        for key, _, _ in COLUMNS:
            if not summary:
                cells.append("error")
                continue
            mean, std = summary[key]
            digits = 2 if key == "fit_seconds" else 3
            text = f"{mean:.{digits}f} ± {std:.{digits}f}"
            cells.append(f"**{text}**" if key in best and mean == best[key] else text)
        suffix = f" ({len(errors)} failed fold(s))" if errors and summary else ""
        lines.append(f"| {name}{suffix} | {configs} | " + " | ".join(cells) + " |")
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
    parser.add_argument("--datasets", default="compas,adult,bank")
    parser.add_argument("--outer-folds", type=int, default=3)
    parser.add_argument("--inner-folds", type=int, default=2)
    parser.add_argument(
        "--epochs",
        type=int,
        default=30,
        help="epochs of sqnn, the MLP and the adversarial model",
    )
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma list of: " + ", ".join(METHODS),
    )
    parser.add_argument(
        "--quick", action="store_true", help="one or two configurations per method"
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
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    methods = [METHODS[name] for name in args.methods]
    started = time.perf_counter()
    output: dict[str, Any] = {
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "protocol": {
            "outer_folds": args.outer_folds,
            "inner_folds": args.inner_folds,
            "epochs": args.epochs,
            "seed": SEED,
            "quick": args.quick,
            "selection": "max mean over inner folds of AUC + (1 - GPA) + (1 - AUDC)",
            "grids": {
                m.name: (m.quick_grid if args.quick else m.grid) for m in methods
            },
            "notes": {m.name: m.note for m in methods if m.note},
        },
        "machine": machine_line(),
        "datasets": {},
    }
    for name in args.datasets:
        output["datasets"][name] = run_dataset(name, methods, args)
        # Written after every dataset so a long run that dies keeps what it finished.
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(output, indent=2, allow_nan=True) + "\n")
    output["wall_seconds"] = time.perf_counter() - started
    args.out.write_text(json.dumps(output, indent=2, allow_nan=True) + "\n")

    for name, result in output["datasets"].items():
        print(markdown_table(name, result))
        print()
    for name, note in output["protocol"]["notes"].items():
        print(f"Note, {name}: {note}.")
    machine = output["machine"]
    print(
        f"Machine: {machine['platform']}, {machine['cpus']} CPUs; Python {machine['python']}, torch {machine['torch']}, "
        f"scikit-learn {machine['sklearn']}, fairlearn {machine['fairlearn']}. "
        f"Wall time {output['wall_seconds']:.0f} s. Command: `{output['command']}`."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
