"""The paper's comparison (Cerrato et al. 2023, Figures 2-4): four methods, one protocol.

Usage (from the repository root):

    # COMPAS in full: 4 methods, 11 gammas, 3 outer folds, 2 inner folds (RESULTS.md)
    python benchmarks/paper.py --datasets compas --jobs 2

    # a smoke run (a minute)
    python benchmarks/paper.py --datasets compas --methods bernoulli --gammas 0,1 \
        --epochs 2 --outer-folds 2 --audit-trees 10 --out /tmp/paper-smoke.json

Options: --datasets (compas,adult,bank; peers.py's loaders, so COMPAS is the paper's
protocol: African-American and Caucasian rows, S = race), --methods
(bernoulli,joint,adversarial,vfae), --objectives (independence; separation too if
asked), --gammas (comma list, default 0,0.1,...,1), --epochs (default sqnn's), --outer-folds
(3), --inner-folds (2; 0 for none), --audit-trees (100; the paper's forest had 1000,
fewer keeps the run affordable, 0 skips the audit), --jobs (fits side by side, one
thread each), --out (JSON, default benchmarks/paper.json), --plots (folder of the PNGs,
default benchmarks/).

Protocol (DESIGN.md §5, through peers.py's helpers): outer StratifiedKFold on y (seed
0); the encoder is fitted on the training part only; S is never a feature. Every
method is SQNNClassifier with sqnn's defaults but method, objective and gamma (and
--epochs), so the four share the feature layers and the stochastic binary layer the
audit reads. Each fit is scored on its test fold (AUC, GPA, AUDC, DP, EO) and its
codes are audited: a random forest learns S from the training part's sampled codes
and is scored on the test part's (ADRG = |accuracy - majority share|, RF AUC).

Figure 3: Pearson and Spearman of gamma with 1-GPA, 1-AUDC, 1-EO and AUC over the
per-gamma means of the outer folds. Figures 2 and 4: each method's per-gamma means in
the (AUC, 1-GPA), (AUC, 1-AUDC), (AUC, 1-ADRG) and (AUC, RF AUC) planes. Each method's
best gamma by the paper's L1 rule is chosen twice: on those outer-fold means, which is
optimistic (the test folds choose it; the star in the plots), and, without the test
folds, on --inner-folds stratified inner folds of each outer training part (seed 0, as
peers.py splits them): every gamma is also fitted on each inner fold's fitting rows and
scored (and audited) on its held-out rows, each outer fold takes the gamma whose means
over its inner folds are L1-closest to the ideal point, and that gamma's fit on the
outer training part is scored on the outer test fold (the open diamond in the plots).
Each outer fold may take its own gamma.

The JSON is written after every fit. A run resumes: fits already in --out with the same
settings are kept and not redone, so runs on different datasets add up in one file.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import multiprocessing
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import (  # noqa: E402 -- benchmarks/ is not a package
    SEED,
    Fitted,
    _one_thread_worker,
    audit_codes,
    encode,
    load,
    machine_line,
    outer_folds,
    write_json,
)

from sqnn_cli.metrics import evaluate_scores  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ("compas", "adult", "bank")
METHODS = ("bernoulli", "joint", "adversarial", "vfae")
OBJECTIVES = ("independence", "separation")
DEFAULT_GAMMAS = tuple(round(0.1 * i, 1) for i in range(11))
SCORES = ("auc", "gpa", "audc", "dp_difference", "eo_difference", "d_gpa", "d_audc")
PAPER_NAMES = {
    "bernoulli": "BinaryBernoulli",
    "joint": "BinaryMI",
    "adversarial": "AdvCls",
    "vfae": "VFAE",
}
# Figure 3 as the paper's text states it (COMPAS only): Pearson of gamma with each metric.
# The VFAE sentence reads "between gamma and AUC/1-GPA ... 0.173 and -0.168 respectively".
PAPER_PEARSON = {
    ("bernoulli", "1-GPA"): 0.924,
    ("bernoulli", "AUC"): -0.836,
    ("joint", "1-GPA"): 0.781,
    ("joint", "AUC"): -0.760,
    ("vfae", "AUC"): 0.173,
    ("vfae", "1-GPA"): -0.168,
}


@dataclass(frozen=True)
class Task:
    dataset: str
    method: str
    objective: str
    gamma: float
    fold: int
    # None: fitted on the outer training part, scored on the outer test fold. k: fitted on
    # inner fold k's fitting rows of the outer training part, scored on its held-out rows,
    # for choosing the best gamma without the test fold.
    inner: int | None = None

    def label(self) -> str:
        where = f"fold {self.fold}" + ("" if self.inner is None else f" inner {self.inner}")
        return f"[{self.dataset} {where}] {self.method}/{self.objective} gamma={self.gamma:g}"


def fit_sqnn(task: Task, X, y, s, epochs: int | None) -> Fitted:
    from sqnn_cli.estimator import SQNNClassifier

    model = SQNNClassifier(
        gamma=task.gamma,
        method=task.method,
        objective=task.objective,
        random_state=SEED,
        device="cpu",
    )
    if epochs:
        model.set_params(epochs=epochs)
    model.fit(X, y, sensitive_features=s)
    # S is never an input here, so the scorers ignore the s that peers.py's Fitted passes.
    return Fitted(
        lambda X_, s_: model.predict_proba(X_)[:, 1],
        lambda X_, s_: model.binary_codes(X_),
    )


@functools.cache
def inner_folds(dataset: str, n_outer: int, fold: int, n_inner: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(fitting rows, held-out rows) of each inner fold of an outer training part, as row
    numbers of the whole dataset; split as peers.py's inner selection splits it."""
    _, y, _ = load(dataset)
    train_idx, _ = outer_folds(dataset, n_outer)[fold]
    splitter = StratifiedKFold(n_splits=n_inner, shuffle=True, random_state=SEED)
    return [
        (train_idx[fit], train_idx[held_out])
        for fit, held_out in splitter.split(np.zeros(len(train_idx)), y[train_idx])
    ]


def rows_of(task: Task, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """The rows a task fits on and the rows it is scored on."""
    if task.inner is None:
        return outer_folds(task.dataset, settings["outer_folds"])[task.fold]
    return inner_folds(
        task.dataset, settings["outer_folds"], task.fold, settings["inner_folds"]
    )[task.inner]


def run_task(task: Task, settings: dict) -> dict:
    record: dict[str, Any] = {**asdict(task), **settings}
    started = time.perf_counter()
    try:
        features, y, s = load(task.dataset)
        train_idx, test_idx = rows_of(task, settings)
        X_train, X_test = encode(features.iloc[train_idx], features.iloc[test_idx])
        fitted = fit_sqnn(task, X_train, y[train_idx], s[train_idx], settings["epochs"])
        record["fit_seconds"] = time.perf_counter() - started
        result = evaluate_scores(
            y[test_idx], fitted.score(X_test, None), sensitive_features=s[test_idx]
        )
        record.update({name: float(getattr(result, name)) for name in SCORES})
        if settings["audit_trees"]:
            record.update(
                audit_codes(
                    fitted,
                    X_train,
                    X_test,
                    s[train_idx],
                    s[test_idx],
                    settings["audit_trees"],
                )
            )
    except Exception as error:  # noqa: BLE001 -- one broken fit must not sink the run
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc()
    record["task_seconds"] = time.perf_counter() - started
    return record


# -- planning and running -------------------------------------------------------------


def settings_of(args) -> dict:
    return {
        "epochs": args.epochs,
        "outer_folds": args.outer_folds,
        "audit_trees": args.audit_trees,
        "inner_folds": args.inner_folds,
    }


def key_of(record: dict) -> tuple:
    base = tuple(
        record[k]
        for k in (
            "dataset",
            "method",
            "objective",
            "gamma",
            "fold",
            "epochs",
            "outer_folds",
            "audit_trees",
        )
    )
    # An outer fit does not depend on the inner folds, so records written before inner
    # folds existed (no "inner" key) still count as done.
    inner = record.get("inner")
    return base + ((None, None) if inner is None else (inner, record["inner_folds"]))


SLOW_FIRST = {"joint": 0, "vfae": 1, "adversarial": 2, "bernoulli": 3}


def plan(args, done: set) -> list[Task]:
    tasks = [
        Task(dataset, method, objective, gamma, fold, inner)
        for dataset in args.datasets
        for method in args.methods
        for objective in args.objectives
        for gamma in args.gammas
        for fold in range(args.outer_folds)
        for inner in (None, *range(args.inner_folds))
    ]
    todo = [
        t for t in tasks if key_of({**asdict(t), **settings_of(args)}) not in done
    ]
    # Slowest first, so the pool does not end on one long fit.
    return sorted(todo, key=lambda t: (SLOW_FIRST.get(t.method, 9), -t.gamma))


def status_line(task: Task, record: dict) -> str:
    if "error" in record:
        return f"{task.label()}: {record['error']}"
    audit = f" adrg={record['adrg']:.3f}" if "adrg" in record else ""
    return (
        f"{task.label()}: auc={record['auc']:.3f} gpa={record['gpa']:.3f} "
        f"audc={record['audc']:.3f}{audit} ({record['task_seconds']:.0f} s)"
    )


def run_all(args, output: dict) -> int:
    done = {key_of(r) for r in output["records"] if "error" not in r}
    tasks = plan(args, done)
    # A failed fit is tried again if this run plans it; otherwise its record stays.
    retried = {key_of({**asdict(t), **settings_of(args)}) for t in tasks}
    output["records"] = [r for r in output["records"] if key_of(r) not in retried]
    print(f"{len(tasks)} fits to run ({len(done)} already in {args.out})", file=sys.stderr)
    for dataset in args.datasets:
        load(dataset)  # loaded before forking, so workers share it
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(
        args.jobs, mp_context=context, initializer=_one_thread_worker
    ) as pool:
        futures = {
            pool.submit(run_task, t, settings_of(args)): t for t in tasks
        }
        for future in as_completed(futures):
            record = future.result()
            output["records"].append(record)
            print(status_line(futures[future], record), file=sys.stderr, flush=True)
            write_json(args.out, output)  # a run that dies keeps what it finished
    return len(tasks)


# -- Figure 3: stability in gamma ------------------------------------------------------

CURVES = {  # name shown -> (record key, transform)
    "1-GPA": ("gpa", lambda v: 1.0 - v),
    "1-AUDC": ("audc", lambda v: 1.0 - v),
    "1-EO": ("eo_difference", lambda v: 1.0 - v),
    "AUC": ("auc", lambda v: v),
}


def per_gamma_means(records: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    gammas = sorted({r["gamma"] for r in records})
    means = [
        np.nanmean([r[key] for r in records if r["gamma"] == g and key in r])
        for g in gammas
    ]
    return np.asarray(gammas, float), np.asarray(means, float)


def correlations(records: list[dict]) -> dict[str, dict[str, float]]:
    """Pearson and Spearman of gamma with each curve, over the per-gamma fold means."""
    from scipy.stats import pearsonr, spearmanr

    out = {}
    for name, (key, transform) in CURVES.items():
        gammas, means = per_gamma_means(records, key)
        values = transform(means)
        usable = np.isfinite(values)
        if usable.sum() < 3 or np.ptp(values[usable]) == 0:
            out[name] = {"pearson": math.nan, "spearman": math.nan}
            continue
        out[name] = {
            "pearson": float(pearsonr(gammas[usable], values[usable])[0]),
            "spearman": float(spearmanr(gammas[usable], values[usable])[0]),
        }
    return out


# -- Figures 2 and 4: trade-off planes -----------------------------------------------

# (panel title, y key, y transform, L1 distance of a (auc, y) point to the ideal)
PLANES = {
    "fig2": [
        ("AUC vs 1-GPA", "gpa", lambda v: 1 - v, lambda a, v: (1 - a) + v),
        ("AUC vs 1-AUDC", "audc", lambda v: 1 - v, lambda a, v: (1 - a) + v),
    ],
    "fig4": [
        ("AUC vs RF 1-ADRG", "adrg", lambda v: 1 - v, lambda a, v: (1 - a) + v),
        # The forest's ideal AUC on S is 0.5 (a coin), not 1.
        ("AUC vs RF AUC (S from codes)", "leakage_auc", lambda v: v, lambda a, v: (1 - a) + abs(v - 0.5)),
    ],
}


def best_by_l1(records: list[dict], key: str, distance) -> dict | None:
    """The gamma whose means over `records`' folds are closest to the ideal point. Over
    the outer folds' test scores this is optimistic (the test folds choose it); over
    one outer fold's inner folds it is not (`best_on_inner_folds`)."""
    if not records:
        return None
    gammas, aucs = per_gamma_means(records, "auc")
    _, values = per_gamma_means(records, key)
    d = np.array([distance(a, v) for a, v in zip(aucs, values)])
    if not np.isfinite(d).any():
        return None
    i = int(np.nanargmin(d))
    stds = {
        k: float(np.nanstd([r[k] for r in records if r["gamma"] == gammas[i] and k in r]))
        for k in ("auc", key)
    }
    return {
        "gamma": float(gammas[i]),
        "auc": float(aucs[i]),
        key: float(values[i]),
        "distance": float(d[i]),
        "std": stds,
    }


def best_on_inner_folds(
    inner_records: list[dict], outer_records: list[dict], key: str, distance
) -> dict | None:
    """Each outer fold's best gamma by the L1 rule on the means over its inner folds
    (fits on part of its training part, scored on the rest), then that gamma's figures
    on the fold's test part; mean ± std over the outer folds, and the L1 distance of
    those means. The test folds choose nothing."""
    gammas, chosen = [], []
    for fold in sorted({r["fold"] for r in outer_records}):
        best = best_by_l1([r for r in inner_records if r["fold"] == fold and key in r], key, distance)
        if best is None:
            continue
        outer = [r for r in outer_records if r["fold"] == fold and r["gamma"] == best["gamma"] and key in r]
        if outer:
            gammas.append(best["gamma"])
            chosen.append(outer[0])
    if not chosen:
        return None
    means = {k: float(np.mean([r[k] for r in chosen])) for k in ("auc", key)}
    return {
        "gammas": gammas,
        **means,
        "distance": float(distance(means["auc"], means[key])),
        "std": {k: float(np.std([r[k] for r in chosen])) for k in ("auc", key)},
    }


def groups_of(records: list[dict], inner: bool = False) -> dict[tuple, list[dict]]:
    """Finished fits by (dataset, method, objective): the outer fits, or (inner=True) the
    inner-fold fits."""
    grouped: dict[tuple, list[dict]] = {}
    for r in records:
        if "error" not in r and (r.get("inner") is not None) == inner:
            grouped.setdefault((r["dataset"], r["method"], r["objective"]), []).append(r)
    return grouped


def series_name(method: str, objective: str) -> str:
    return PAPER_NAMES[method] + ("" if objective == "independence" else f" ({objective})")


def draw(path: Path, panels: int, width: float, height: float, draw_panel) -> Path:
    """One row of panels, each drawn by draw_panel(ax, index), saved small."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height))
    for index, ax in enumerate(np.atleast_1d(axes)):
        draw_panel(ax, index)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=72)
    plt.close(fig)
    return path


def plot_planes(dataset: str, grouped: dict, figure: str, folder: Path, inner: dict | None = None) -> Path | None:
    """Each method's per-gamma means, its outer-means L1-best gamma starred and, where
    inner-fold fits exist, the figures of the inner folds' choice as an open diamond."""
    series = of_dataset(grouped, dataset)
    panels = PLANES[figure]

    def panel(ax, index):
        title, key, transform, distance = panels[index]
        best_overall = None
        for (method, objective), records in series:
            if not any(key in r for r in records):
                continue
            _, aucs = per_gamma_means(records, "auc")
            _, values = per_gamma_means(records, key)
            line = ax.plot(aucs, transform(values), "o-", ms=3, lw=0.8, alpha=0.7, label=series_name(method, objective))[0]
            best = best_by_l1(records, key, distance)
            if best:
                ax.plot(best["auc"], transform(best[key]), "*", ms=14, color=line.get_color(), mec="k")
                if best_overall is None or best["distance"] < best_overall["distance"]:
                    best_overall = best
            chosen = best_on_inner_folds((inner or {}).get((dataset, method, objective), []), records, key, distance)
            if chosen:
                ax.plot(chosen["auc"], transform(chosen[key]), "D", ms=8, mfc="none", color=line.get_color())
        if best_overall and key != "leakage_auc":
            # Points of equal L1 distance to (1, 1): x + y = const; drawn inside the data's box.
            total = best_overall["auc"] + transform(best_overall[key])
            xlim, ylim = ax.get_xlim(), ax.get_ylim()
            ax.plot(np.asarray(xlim), total - np.asarray(xlim), ":", color="grey")
            ax.set(xlim=xlim, ylim=ylim)
        ax.set_title(f"{dataset}: {title}", fontsize=9)
        ax.set_xlabel("AUC (test folds, mean)")

    if not series:
        return None
    return draw(folder / f"paper_{figure}_{dataset}.png", len(panels), 5, 4.2, panel)


def plot_gamma(dataset: str, grouped: dict, folder: Path) -> Path | None:
    series = of_dataset(grouped, dataset)
    names = ("1-GPA", "1-AUDC", "AUC")

    def panel(ax, index):
        key, transform = CURVES[names[index]]
        for (method, objective), records in series:
            gammas, means = per_gamma_means(records, key)
            ax.plot(gammas, transform(means), "o-", ms=3, lw=1, label=series_name(method, objective))
        ax.set_title(f"{dataset}: {names[index]} against gamma", fontsize=9)
        ax.set_xlabel("gamma")

    if not series:
        return None
    return draw(folder / f"paper_fig3_{dataset}.png", len(names), 4.3, 3.8, panel)


# -- report ----------------------------------------------------------------------------


def table_head(title: str, columns: tuple[str, ...]) -> list[str]:
    return [title, "", "| " + " | ".join(columns) + " |", "|---" * len(columns) + "|"]


def of_dataset(grouped: dict, dataset: str) -> list[tuple[tuple[str, str], list[dict]]]:
    """((method, objective), records) of one dataset, in a stable order."""
    return [((m, o), r) for (ds, m, o), r in sorted(grouped.items()) if ds == dataset]


def fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:+.3f}"


def correlation_table(dataset: str, grouped: dict) -> str:
    lines = table_head(
        f"Figure 3, {dataset}: correlation of gamma with the per-gamma means (Pearson / Spearman;"
        " the paper's Pearson, COMPAS only, in brackets)",
        ("method", "objective", "1-GPA", "1-AUDC", "1-EO", "AUC", "Spearman goal"),
    )
    for (method, objective), records in of_dataset(grouped, dataset):
        corr = correlations(records)
        cells = []
        for name in ("1-GPA", "1-AUDC", "1-EO", "AUC"):
            cell = f"{fmt(corr[name]['pearson'])} / {fmt(corr[name]['spearman'])}"
            paper = PAPER_PEARSON.get((method, name))
            if paper is not None and dataset == "compas" and objective == "independence":
                cell += f" ({paper:+.3f})"
            cells.append(cell)
        goal = "-"
        if method in ("bernoulli", "joint"):
            target = "1-AUDC" if objective == "independence" else "1-GPA"
            rho = corr[target]["spearman"]
            if math.isfinite(rho):
                goal = f"{target} {rho:.3f} {'met' if rho >= 0.95 else 'missed'} (>= 0.95)"
        lines.append(f"| {PAPER_NAMES[method]} | {objective} | " + " | ".join(cells) + f" | {goal} |")
    return "\n".join(lines)


def best_table(dataset: str, grouped: dict) -> str:
    lines = table_head(
        f"Figures 2 and 4, {dataset}: each method's best gamma by the L1 rule, chosen on the"
        " outer folds' means (optimistic); mean ± std over the outer folds",
        ("method", "objective", "plane", "best gamma", "AUC", "metric", "L1 distance"),
    )
    for (method, objective), records in of_dataset(grouped, dataset):
        for figure in ("fig2", "fig4"):
            for title, key, transform, distance in PLANES[figure]:
                if not any(key in r for r in records):
                    continue
                best = best_by_l1(records, key, distance)
                if best is None:
                    continue
                lines.append(
                    f"| {PAPER_NAMES[method]} | {objective} | {title} | {best['gamma']:g} | "
                    f"{best['auc']:.3f} ± {best['std']['auc']:.3f} | "
                    f"{key} {best[key]:.3f} ± {best['std'][key]:.3f} | {best['distance']:.3f} |"
                )
    return "\n".join(lines)


def inner_table(dataset: str, grouped: dict, inner: dict) -> str:
    lines = table_head(
        f"Figures 2 and 4, {dataset}: each method's gamma chosen by the L1 rule on the inner"
        " folds of each outer training part, scored on that outer fold's test part; mean ±"
        " std over the outer folds (the outer-means choice's L1 distance, optimistic, beside it)",
        ("method", "objective", "plane", "gamma per outer fold", "AUC", "metric", "L1 distance", "optimistic L1"),
    )
    for (method, objective), records in of_dataset(grouped, dataset):
        inner_records = inner.get((dataset, method, objective), [])
        for figure in ("fig2", "fig4"):
            for title, key, _, distance in PLANES[figure]:
                best = best_on_inner_folds(inner_records, records, key, distance)
                if best is None:
                    continue
                optimistic = best_by_l1(records, key, distance)
                lines.append(
                    f"| {PAPER_NAMES[method]} | {objective} | {title} | "
                    + ", ".join(f"{g:g}" for g in best["gammas"])
                    + f" | {best['auc']:.3f} ± {best['std']['auc']:.3f} | "
                    f"{key} {best[key]:.3f} ± {best['std'][key]:.3f} | {best['distance']:.3f} | "
                    f"{optimistic['distance']:.3f} |"
                )
    return "\n".join(lines)


def summary(output: dict) -> dict:
    grouped = groups_of(output["records"])
    inner = groups_of(output["records"], inner=True)
    return {
        f"{ds}/{method}/{objective}": {
            "fits": len(records),
            "correlations": correlations(records),
            "best": {
                title: best_by_l1(records, key, distance)
                for figure in PLANES.values()
                for title, key, _, distance in figure
                if any(key in r for r in records)
            },
            "best_on_inner_folds": {
                title: best_on_inner_folds(inner.get((ds, method, objective), []), records, key, distance)
                for figure in PLANES.values()
                for title, key, _, distance in figure
                if any(key in r for r in records)
            },
        }
        for (ds, method, objective), records in sorted(grouped.items())
    }


# -- command line ------------------------------------------------------------------------


def comma_list(text: str, known, parser, option: str) -> list:
    chosen = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in known]
    if unknown or not chosen:
        parser.error(f"--{option}: unknown {unknown}; choose from {', '.join(known)}")
    return chosen


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default=",".join(DATASETS))
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--objectives", default="independence")
    parser.add_argument("--gammas", default=",".join(f"{g:g}" for g in DEFAULT_GAMMAS))
    parser.add_argument("--epochs", type=int, default=None, help="default: sqnn's")
    parser.add_argument("--outer-folds", type=int, default=3)
    parser.add_argument(
        "--inner-folds",
        type=int,
        default=2,
        help="inner folds of each outer training part that choose each method's best gamma (0: none)",
    )
    parser.add_argument("--audit-trees", type=int, default=100, help="0: no audit")
    parser.add_argument("--jobs", type=int, default=2, help="fits side by side, one thread each")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "paper.json")
    parser.add_argument("--plots", type=Path, default=ROOT / "benchmarks")
    args = parser.parse_args(argv)
    args.datasets = comma_list(args.datasets, DATASETS, parser, "datasets")
    args.methods = comma_list(args.methods, METHODS, parser, "methods")
    args.objectives = comma_list(args.objectives, OBJECTIVES, parser, "objectives")
    try:
        args.gammas = [float(g) for g in args.gammas.split(",") if g.strip()]
    except ValueError:
        parser.error(f"--gammas: not a comma list of numbers: {args.gammas!r}")
    if not args.gammas or not all(0.0 <= g <= 1.0 for g in args.gammas):
        parser.error("--gammas: give numbers in [0, 1]")
    bad_inner = args.inner_folds == 1 or args.inner_folds < 0
    if args.jobs < 1 or args.outer_folds < 2 or args.audit_trees < 0 or bad_inner:
        parser.error(
            "--jobs must be positive, --outer-folds at least 2, --inner-folds 0 or at least 2, --audit-trees >= 0"
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    output: dict[str, Any] = {"runs": [], "records": []}
    if args.out.exists():
        output = json.loads(args.out.read_text())
    command = " ".join(["python", "benchmarks/paper.py", *(argv if argv is not None else sys.argv[1:])])
    run = {"command": command, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "seed": SEED}
    output["machine"] = machine_line()
    started = time.perf_counter()
    fits = run_all(args, output)
    run["wall_seconds"] = time.perf_counter() - started
    if fits:  # a rerun with nothing left to fit only redraws and reprints
        output["runs"].append({**run, "fits": fits})
    output["records"].sort(key=lambda r: (r["dataset"], r["method"], r["objective"], r["gamma"], r["fold"]))
    output["summary"] = summary(output)
    write_json(args.out, output)

    grouped = groups_of(output["records"])
    inner = groups_of(output["records"], inner=True)
    args.plots.mkdir(parents=True, exist_ok=True)
    for dataset in args.datasets:
        for path in (
            plot_planes(dataset, grouped, "fig2", args.plots, inner),
            plot_planes(dataset, grouped, "fig4", args.plots, inner),
            plot_gamma(dataset, grouped, args.plots),
        ):
            if path:
                print(f"Wrote {path}", file=sys.stderr)
        print(correlation_table(dataset, grouped), end="\n\n")
        print(best_table(dataset, grouped), end="\n\n")
        if any(ds == dataset for ds, _, _ in inner):
            print(inner_table(dataset, grouped, inner), end="\n\n")
    failed = [r for r in output["records"] if "error" in r]
    print(f"Wall time {run['wall_seconds']:.0f} s, {args.jobs} fits side by side. Failed fits: {len(failed)}. Command: `{command}`.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
