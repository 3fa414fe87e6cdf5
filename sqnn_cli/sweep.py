"""The gamma sweep: one model per (gamma, fold), run in parallel, resumable.

A sweep directory holds ``sweep.json`` (what was asked, so that a rerun with other
options is caught), ``runs.jsonl`` (one line per finished run, only ever appended) and
the derived ``summary.csv``, ``summary.json`` and ``tradeoff.png``. A killed sweep loses
at most the runs that were in flight; running the same command again resumes it.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.model_selection import StratifiedKFold

from . import __version__, pipeline
from .bundle import ModelBundle
from .data import ColumnRoles
from .errors import InputError
from .estimator import SQNNClassifier
from .jsonable import plain

__all__ = [
    "PLAN_FILE",
    "RUNS_FILE",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "PLOT_FILE",
    "SweepPlan",
    "RunTask",
    "SweepDirectory",
    "SweepSummary",
    "gamma_grid",
    "make_tasks",
    "run_one",
    "execute",
    "summarise",
    "BACKENDS",
]

PLAN_FILE = "sweep.json"
RUNS_FILE = "runs.jsonl"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
PLOT_FILE = "tradeoff.png"
BACKENDS = ("local", "dask")
FORMAT_VERSION = 1
# Gammas are compared as keys after rounding, so 0.1 from --steps and 0.1 typed by hand
# name the same run.
_GAMMA_DECIMALS = 10
SUMMARY_METRICS = (
    "auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference", "eo_difference", "d_gpa", "d_audc",
)  # fmt: skip
AUDIT_METRICS = ("adrg", "leakage_auc", "mi_joint")


def gamma_grid(gammas: Sequence[float] | None, steps: int) -> tuple[float, ...]:
    """The sweep's gammas: the ones given, or ``steps`` evenly spaced in [0, 1]."""
    if gammas:
        values = [float(g) for g in gammas]
    else:
        if steps < 2:
            raise InputError(f"--steps must be at least 2, got {steps}")
        values = np.linspace(0.0, 1.0, steps).tolist()
    bad = [g for g in values if not (math.isfinite(g) and 0.0 <= g <= 1.0)]
    if bad:
        raise InputError(f"every gamma must be in [0, 1]; got {bad[0]}")
    return tuple(sorted({round(g, _GAMMA_DECIMALS) for g in values}))


@dataclass(frozen=True)
class SweepPlan:
    """Everything that determines a sweep's results, except which gammas it covers."""

    estimator_params: dict[str, Any]
    roles: ColumnRoles
    data_sha256: str
    folds: int
    test_sha256: str | None = None
    drop_missing: bool = False
    threshold: float = 0.5
    min_group_size: int = 30
    audit: bool = False
    trees: int = 1000

    def fingerprint(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "estimator_params": self.estimator_params,
            "roles": self.roles.to_dict(),
            "data_sha256": self.data_sha256,
            "folds": self.folds,
            "test_sha256": self.test_sha256,
            "drop_missing": self.drop_missing,
            "threshold": self.threshold,
            "min_group_size": self.min_group_size,
            "audit": self.audit,
            "trees": self.trees if self.audit else None,
        }


@dataclass
class RunTask:
    """One (gamma, fold) run with the rows it trains and is scored on."""

    gamma: float
    fold: int
    train: pd.DataFrame
    test: pd.DataFrame
    plan: SweepPlan

    @property
    def key(self) -> tuple[float, int]:
        return (self.gamma, self.fold)


def make_tasks(
    plan: SweepPlan, gammas: Sequence[float], frame: pd.DataFrame, test_frame: pd.DataFrame | None
) -> list[RunTask]:
    """Every gamma on every fold (or on the fixed test table), the data checked first."""
    from .data import prepare

    data = prepare(frame, plan.roles, drop_missing=plan.drop_missing, for_training=True)
    kept = frame.loc[data.kept_index]
    if test_frame is not None:
        # Checked now rather than after the first model has trained.
        prepare(test_frame, plan.roles, drop_missing=plan.drop_missing)
        splits = [(kept, test_frame)]
    else:
        folds = StratifiedKFold(n_splits=plan.folds, shuffle=True, random_state=int(plan.estimator_params["random_state"]))
        try:
            index_pairs = list(folds.split(np.zeros(len(data.y)), data.y))
        except ValueError as exc:
            raise InputError(f"cannot make {plan.folds} stratified folds: {exc}") from None
        splits = [(kept.iloc[train], kept.iloc[test]) for train, test in index_pairs]
    return [RunTask(gamma, fold, train, test, plan) for gamma in gammas for fold, (train, test) in enumerate(splits)]


_THREADS_LOCK = threading.Lock()
_runs_in_process = 0
_threads_before = 0


@contextmanager
def _one_thread() -> Iterator[None]:
    """Every run uses one thread (torch's, and the BLAS and OpenMP pools numpy and
    scikit-learn use), in a worker or not: parallel workers do not fight over cores,
    and a run's floating-point results do not depend on --n-jobs.

    Runs may share a process (threads of a Dask worker), so the setting is counted:
    the first run in sets one thread, the last one out restores the previous count.
    """
    from threadpoolctl import threadpool_limits

    global _runs_in_process, _threads_before
    with _THREADS_LOCK:
        if _runs_in_process == 0:
            _threads_before = torch.get_num_threads()
            torch.set_num_threads(1)
        _runs_in_process += 1
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        with _THREADS_LOCK:
            _runs_in_process -= 1
            if _runs_in_process == 0:
                torch.set_num_threads(_threads_before)


def run_one(task: RunTask) -> dict[str, Any]:
    """Train on the task's training rows, score its test rows; a JSON-ready record."""
    plan = task.plan
    started = time.perf_counter()
    with _one_thread():
        estimator = SQNNClassifier(**{**plan.estimator_params, "gamma": task.gamma})
        outcome = pipeline.train(task.train, plan.roles, estimator, drop_missing=plan.drop_missing)
        bundle = ModelBundle(estimator=outcome.estimator, encoder=outcome.encoder, meta={"roles": plan.roles.to_dict()})
        evaluation = pipeline.evaluate(
            bundle, task.test, threshold=plan.threshold, min_group_size=plan.min_group_size, drop_missing=plan.drop_missing
        )
        record: dict[str, Any] = {
            "gamma": task.gamma,
            "fold": task.fold,
            "rows_train": outcome.rows_trained,
            "rows_test": evaluation.result.n,
            "metrics": evaluation.result.to_dict(),
            "final_epoch": outcome.estimator.history_[-1],
        }
        if plan.audit:
            audit = pipeline.audit(bundle, task.test, trees=plan.trees, n_jobs=1, seed=int(plan.estimator_params["random_state"]))
            record["audit"] = audit.audit.to_dict()
    record["seconds"] = time.perf_counter() - started
    record["sqnn_version"] = __version__
    return record


def execute(
    tasks: Sequence[RunTask], *, n_jobs: int = 1, backend: str = "local", scheduler: str | None = None
) -> Iterator[dict[str, Any]]:
    """Run the tasks, yielding each record as soon as its run finishes.

    ``local`` runs them in this process (n_jobs=1) or on local worker processes;
    ``dask`` sends them to the Dask cluster at ``scheduler`` through joblib's dask
    backend. The records are the same whichever way they ran.
    """
    if backend not in BACKENDS:
        raise InputError(f"--backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "local" and n_jobs == 1:
        for task in tasks:
            yield run_one(task)
        return
    if backend == "dask":
        import joblib

        if not scheduler:
            raise InputError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
        try:
            from distributed import Client
        except ImportError:
            raise InputError("--backend dask needs Dask: pip install 'sqnn[dask]'") from None
        try:
            client = Client(scheduler, timeout="10s", set_as_default=False)
        except OSError as exc:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
        try:
            with joblib.parallel_config(backend="dask", client=client, wait_for_workers_timeout=30):
                yield from joblib.Parallel(n_jobs=-1, return_as="generator_unordered")(joblib.delayed(run_one)(t) for t in tasks)
        finally:
            client.close()
        return
    yield from _local_pool(tasks, n_jobs)


def _local_pool(tasks: Sequence[RunTask], n_jobs: int) -> Iterator[dict[str, Any]]:
    """Run the tasks on ``n_jobs`` local worker processes, yielding as they finish.

    Where the platform can fork, the workers are forked from this process and inherit
    its imports: joblib's default (loky) starts fresh interpreters that spend about
    3.5 s importing torch, scikit-learn and pandas before the first run, a fifth of a
    default COMPAS sweep. Elsewhere joblib's loky pool does the same job.
    """
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        import joblib

        yield from joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered")(joblib.delayed(run_one)(t) for t in tasks)
        return
    from concurrent.futures import ProcessPoolExecutor, as_completed

    pool = ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("fork"))
    try:
        futures = [pool.submit(run_one, task) for task in tasks]
        for future in as_completed(futures):
            yield future.result()
    except BaseException:
        # Ctrl-C or a failed run: drop what has not started rather than wait for it.
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


# -- the directory --------------------------------------------------------------------------
class SweepDirectory:
    """The files of one sweep; only this class reads or writes them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @property
    def runs_path(self) -> Path:
        return self.path / RUNS_FILE

    def open(self, plan: SweepPlan, *, options: dict[str, Any], overwrite: bool) -> None:
        """Start or resume a sweep; a directory holding another sweep is refused.

        sweep.json records the plan's fingerprint, which a rerun must match (gammas are
        not part of it: a rerun may add gammas to a sweep), and the latest command's
        options as given.
        """
        plan_path = self.path / PLAN_FILE
        if self.path.exists() and not self.path.is_dir():
            raise InputError(f"--out '{self.path}' exists and is not a directory")
        if plan_path.exists():
            try:
                recorded = json.loads(plan_path.read_text())
            except ValueError:
                recorded = None
            if not isinstance(recorded, dict) or recorded.get("fingerprint") != _json_round_trip(plan.fingerprint()):
                if not overwrite:
                    raise InputError(
                        f"'{self.path}' holds a sweep with other options or data; pass --overwrite to start it afresh, "
                        "or choose another --out"
                    )
                for name in (PLAN_FILE, RUNS_FILE, SUMMARY_CSV, SUMMARY_JSON, PLOT_FILE):
                    (self.path / name).unlink(missing_ok=True)
        elif self.path.exists() and any(self.path.iterdir()) and not overwrite:
            raise InputError(f"'{self.path}' exists and is not a sweep directory; choose another --out")
        self.path.mkdir(parents=True, exist_ok=True)
        content = {"fingerprint": plan.fingerprint(), "options": options}
        _write_atomic(plan_path, json.dumps(plain(content), indent=2) + "\n")

    def finished(self) -> tuple[list[dict[str, Any]], int]:
        """The finished runs' records (first of any duplicates) and the number of torn
        lines skipped (a line cut short by a kill during its append)."""
        if not self.runs_path.exists():
            return [], 0
        records: dict[tuple[float, int], dict[str, Any]] = {}
        torn = 0
        for line in self.runs_path.read_text().splitlines():
            try:
                record = json.loads(line)
                key = (round(float(record["gamma"]), _GAMMA_DECIMALS), int(record["fold"]))
            except (ValueError, KeyError, TypeError):
                torn += 1
                continue
            records.setdefault(key, record)
        return list(records.values()), torn

    def append(self, record: dict[str, Any]) -> None:
        """Append one record as one line with a single write, then flush it to disk.

        The file is opened for appending only, so earlier lines are never touched; a
        line cut short by a kill is terminated before the next append.
        """
        line = (json.dumps(plain(record), allow_nan=False) + "\n").encode()
        fd = os.open(self.runs_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            if os.fstat(fd).st_size and not _ends_with_newline(self.runs_path):
                line = b"\n" + line
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)

    def write_summary(self, summary: "SweepSummary") -> tuple[Path, Path]:
        csv_path, json_path = self.path / SUMMARY_CSV, self.path / SUMMARY_JSON
        frame = pd.DataFrame(summary.rows)
        handle, temporary = tempfile.mkstemp(prefix=f".{SUMMARY_CSV}.", dir=self.path)
        os.close(handle)
        frame.to_csv(temporary, index=False)
        os.replace(temporary, csv_path)
        _write_atomic(json_path, json.dumps(plain(summary.to_dict()), indent=2, allow_nan=False) + "\n")
        return csv_path, json_path


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


def _write_atomic(path: Path, text: str) -> None:
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(handle, "w") as stream:
        stream.write(text)
    os.replace(temporary, path)


def _json_round_trip(value: Any) -> Any:
    return json.loads(json.dumps(plain(value)))


# -- the summary ------------------------------------------------------------------------------
@dataclass
class SweepSummary:
    rows: list[dict[str, Any]]
    best_by_d_gpa: float | None
    best_by_d_audc: float | None
    best_by_criterion: float | None
    correlations: dict[str, dict[str, float | None]]
    runs_finished: int
    runs_planned: int
    folds: int
    notes: list[str] = field(default_factory=list)

    def row(self, gamma: float | None) -> dict[str, Any] | None:
        return next((r for r in self.rows if r["gamma"] == gamma), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "gammas": self.rows,
            "best_gamma_by_d_gpa": self.best_by_d_gpa,
            "best_gamma_by_d_audc": self.best_by_d_audc,
            "best_gamma_by_criterion": self.best_by_criterion,
            "correlations": self.correlations,
            "runs_finished": self.runs_finished,
            "runs_planned": self.runs_planned,
            "folds": self.folds,
            "notes": self.notes,
        }


def _pareto(points: list[tuple[float, float]]) -> list[bool]:
    """For (utility to maximise, cost to minimise) pairs: is each one non-dominated?"""
    flags = []
    for i, (utility, cost) in enumerate(points):
        dominated = any(
            (u >= utility and c <= cost) and (u > utility or c < cost)
            for j, (u, c) in enumerate(points)
            if j != i and math.isfinite(u) and math.isfinite(c)
        )
        flags.append(math.isfinite(utility) and math.isfinite(cost) and not dominated)
    return flags


def _correlation(x: Sequence[float], y: Sequence[float], kind: str) -> float | None:
    from scipy import stats

    pairs = [(a, b) for a, b in zip(x, y) if b is not None and math.isfinite(b)]
    if len(pairs) < 3 or len({b for _, b in pairs}) < 2:
        return None
    xs, ys = zip(*pairs)
    result = stats.pearsonr(xs, ys) if kind == "pearson" else stats.spearmanr(xs, ys)
    return float(result[0])


def _audit_value(record: dict[str, Any], key: str) -> float | None:
    audit = record.get("audit")
    if not audit:
        return None
    value = audit.get(key)
    return value.get("bits") if isinstance(value, dict) else value


def summarise(records: Sequence[dict[str, Any]], *, runs_planned: int, folds: int) -> SweepSummary:
    """Mean and standard deviation over folds per gamma, Pareto fronts, best gammas
    (the paper's selection: smallest distance to the ideal point) and correlations."""
    by_gamma: dict[float, list[dict[str, Any]]] = {}
    for record in records:
        by_gamma.setdefault(round(float(record["gamma"]), _GAMMA_DECIMALS), []).append(record)
    rows = []
    for gamma in sorted(by_gamma):
        group = by_gamma[gamma]
        row: dict[str, Any] = {"gamma": gamma, "folds": len(group)}
        columns = {m: [r["metrics"].get(m) for r in group] for m in SUMMARY_METRICS}
        if any("audit" in r for r in group):
            columns.update({m: [_audit_value(r, m) for r in group] for m in AUDIT_METRICS})
        for metric, values in columns.items():
            finite = [v for v in values if v is not None and math.isfinite(v)]
            row[f"{metric}_mean"] = float(np.mean(finite)) if finite else None
            row[f"{metric}_std"] = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
        rows.append(row)

    def values(key: str) -> list[float]:
        return [r[key] if r[key] is not None else float("nan") for r in rows]

    auc = values("auc_mean")
    for name, cost in (("gpa", values("gpa_mean")), ("audc", values("audc_mean"))):
        for row, flag in zip(rows, _pareto(list(zip(auc, cost)))):
            row[f"pareto_{name}"] = flag

    for row in rows:
        parts = [row["auc_mean"], row["gpa_mean"], row["audc_mean"]]
        finite = all(v is not None and math.isfinite(v) for v in parts)
        # The paper's model selection, which weighs GPA and AUDC together.
        row["criterion_mean"] = parts[0] + (1 - parts[1]) + (1 - parts[2]) if finite else None

    def best(key: str, *, largest: bool = False) -> float | None:
        scored = [(-r[key] if largest else r[key], r["gamma"]) for r in rows if r[key] is not None and math.isfinite(r[key])]
        return min(scored)[1] if scored else None

    gammas = [r["gamma"] for r in rows]
    targets = {
        "one_minus_gpa": [1 - v if math.isfinite(v) else None for v in values("gpa_mean")],
        "one_minus_audc": [1 - v if math.isfinite(v) else None for v in values("audc_mean")],
        "auc": [v if math.isfinite(v) else None for v in auc],
    }
    correlations = {
        kind: {name: _correlation(gammas, series, kind) for name, series in targets.items()} for kind in ("pearson", "spearman")
    }
    notes = []
    if len(rows) < 3:
        notes.append("correlations need at least three gammas")
    return SweepSummary(
        rows=rows,
        best_by_d_gpa=best("d_gpa_mean"),
        best_by_d_audc=best("d_audc_mean"),
        best_by_criterion=best("criterion_mean", largest=True),
        correlations=correlations,
        runs_finished=len(records),
        runs_planned=runs_planned,
        folds=folds,
        notes=notes,
    )
