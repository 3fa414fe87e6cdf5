"""The gamma sweep: one model per (gamma, fold), run in parallel, resumable.

The models of one fold share their rows and differ only in gamma: where the method allows
(batched.py), they train together in one pass and are scored together (``run_batch``);
``work_units`` says which runs go together, and ``execute`` hands those units out.

``run_sweep`` is the whole of it, for the CLI and for Python callers alike: it plans the
runs, takes the directory, resumes, trains what is missing and writes the summary; it
never prints, and hands what a user should hear to its callbacks.

A sweep directory holds ``sweep.json`` (what was asked, so that a rerun with other
options is caught), ``runs.jsonl`` (one line per finished run, only ever appended) and
the derived ``summary.csv``, ``summary.json`` and ``tradeoff.png``. A killed sweep loses
at most the runs that were in flight; running the same command again resumes it.

One sweep at a time owns a directory: it holds an exclusive ``flock`` on ``.sweep.lock``
there from before anything is trained or deleted until it ends. The kernel drops the lock
when its holder dies, however it dies, so a lock left by a killed sweep is simply taken
over. Local worker processes die with the sweep that started them.
"""

from __future__ import annotations

import ctypes
import datetime
import hashlib
import json
import math
import os
import signal
import socket
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from . import __version__, defaults, files, limits, pipeline
from .batched import BATCHED_METHODS, positive_scores, train_gammas
from .data import ColumnRoles
from .errors import InputError, ParameterError
from .estimator import SQNNClassifier, limit_threads
from .fitted import FittedModel
from .jsonable import plain

__all__ = [
    "PLAN_FILE",
    "RUNS_FILE",
    "SUMMARY_CSV",
    "SUMMARY_JSON",
    "PLOT_FILE",
    "RunSettings",
    "SweepPlan",
    "RunTask",
    "SweepDirectory",
    "SweepSummary",
    "SweepRequest",
    "SweepData",
    "SweepNote",
    "SweepOutcome",
    "run_sweep",
    "gamma_grid",
    "make_tasks",
    "run_key",
    "record_problem",
    "pending_tasks",
    "planned_records",
    "worker_count",
    "run_one",
    "run_batch",
    "run_unit",
    "work_units",
    "batchable",
    "check_backend",
    "execute",
    "summarise",
    "BACKENDS",
]

PLAN_FILE = "sweep.json"
RUNS_FILE = "runs.jsonl"
SUMMARY_CSV = "summary.csv"
SUMMARY_JSON = "summary.json"
PLOT_FILE = "tradeoff.png"
LOCK_FILE = ".sweep.lock"
# What overwrite may delete: the files a sweep writes, and the temporary files its
# atomic writes leave behind when killed mid-write (files.is_temporary_of).
_SWEEP_FILES = (PLAN_FILE, RUNS_FILE, SUMMARY_CSV, SUMMARY_JSON, PLOT_FILE)
BACKENDS = ("local", "dask")
FORMAT_VERSION = 1
# Gammas are compared as keys after rounding, so 0.1 from steps and 0.1 typed by hand
# name the same run.
_GAMMA_DECIMALS = 10
SUMMARY_METRICS = (
    "auc", "accuracy", "balanced_accuracy", "gpa", "audc", "dp_difference", "eo_difference", "dp_ratio", "eo_ratio",
    "d_gpa", "d_audc",
)  # fmt: skip
AUDIT_METRICS = ("adrg", "leakage_auc", "mi_joint")


def gamma_grid(gammas: Sequence[float] | None, steps: int) -> tuple[float, ...]:
    """The sweep's gammas: the ones given, or ``steps`` evenly spaced in [0, 1]."""
    if gammas:
        values = [float(g) for g in gammas]
    else:
        if steps < 2:
            raise ParameterError("{steps} must be at least 2, got {got}", got=steps)
        values = np.linspace(0.0, 1.0, steps).tolist()
    bad = [g for g in values if not (math.isfinite(g) and 0.0 <= g <= 1.0)]
    if bad:
        raise ParameterError("every gamma of {gammas} must be in [0, 1]; got {got}", got=bad[0])
    grid = tuple(sorted({round(g, _GAMMA_DECIMALS) for g in values}))
    if len(grid) > limits.MAX_SWEEP_STEPS:
        raise ParameterError("{gammas} lists {count} gammas; a sweep takes at most {most}", count=len(grid), most=limits.MAX_SWEEP_STEPS)
    return grid


@dataclass(frozen=True)
class RunSettings:
    """How every run of a sweep treats its rows and is scored."""

    drop_missing: bool = False
    inf_as_missing: bool = False
    threshold: float | None = None
    """None: each model scores at its own threshold, chosen on its training rows."""
    min_group_size: int = 30
    audit: bool = False
    trees: int = 1000

    @property
    def missing(self) -> dict[str, bool]:
        """The keyword arguments that say how data.prepare treats missing values."""
        return {"drop_missing": self.drop_missing, "inf_as_missing": self.inf_as_missing}


@dataclass(frozen=True)
class SweepPlan:
    """Everything that determines a sweep's results, except which gammas it covers."""

    estimator_params: dict[str, Any]
    roles: ColumnRoles
    data_sha256: str
    folds: int
    test_sha256: str | None = None
    settings: RunSettings = RunSettings()

    def fingerprint(self) -> dict[str, Any]:
        settings = self.settings
        return {
            "format_version": FORMAT_VERSION,
            "estimator_params": self.estimator_params,
            "roles": self.roles.to_dict(),
            "data_sha256": self.data_sha256,
            "folds": self.folds,
            "test_sha256": self.test_sha256,
            "drop_missing": settings.drop_missing,
            "inf_as_missing": settings.inf_as_missing,
            "threshold": settings.threshold,
            "min_group_size": settings.min_group_size,
            "audit": settings.audit,
            "trees": settings.trees if settings.audit else None,
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
    from sklearn.model_selection import StratifiedKFold  # imports scipy.stats: see imports.py

    from .data import prepare

    data = prepare(frame, plan.roles, **plan.settings.missing, for_training=True)
    kept = frame.loc[data.kept_index]
    if test_frame is not None:
        # Checked now rather than after the first model has trained.
        prepare(test_frame, plan.roles, **plan.settings.missing)
        splits = [(kept, test_frame)]
    else:
        folds = StratifiedKFold(n_splits=plan.folds, shuffle=True, random_state=int(plan.estimator_params["random_state"]))
        try:
            index_pairs = list(folds.split(np.zeros(len(data.y)), data.y))
        except ValueError as exc:
            raise InputError(f"cannot make {plan.folds} stratified folds: {exc}") from None
        splits = [(kept.iloc[train], kept.iloc[test]) for train, test in index_pairs]
    return [RunTask(gamma, fold, train, test, plan) for gamma in gammas for fold, (train, test) in enumerate(splits)]


def _is_number(value: Any) -> bool:
    # A JSON integer of hundreds of digits is an int that math.isfinite cannot convert.
    return isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool) and abs(value) < 2**63)


def _is_metric_value(value: Any) -> bool:
    # Metrics that cannot be estimated are written as null (see jsonable.plain); a flag
    # (a bool) averages as a rate.
    return value is None or isinstance(value, bool) or (_is_number(value) and math.isfinite(value))


def record_problem(record: Any) -> str | None:
    """What makes a line of runs.jsonl unusable, or None when it is a well-formed record.

    The one place a record's shape is judged: everything that reads records (resuming,
    the summary) relies on what this checks, so a hand-edited or foreign line is skipped
    with a reason instead of failing later.
    """
    if not isinstance(record, dict):
        return "is not a JSON object"
    gamma, fold, metrics = record.get("gamma"), record.get("fold"), record.get("metrics")
    if not (_is_number(gamma) and math.isfinite(gamma) and 0.0 <= gamma <= 1.0):
        return "has no gamma in [0, 1]"
    if not (isinstance(fold, int) and not isinstance(fold, bool) and fold >= 0):
        return "has no fold (a whole number >= 0)"
    if not isinstance(metrics, dict):
        return "has no metrics object"
    absent = next((m for m in SUMMARY_METRICS if m not in metrics), None)
    if absent is not None:
        return f"has no metric {absent}"
    bad = next((m for m in SUMMARY_METRICS if not _is_metric_value(metrics[m])), None)
    if bad is not None:
        return f"has a metric {bad} that is not a number"
    audit = record.get("audit")
    if audit is not None:
        if not isinstance(audit, dict):
            return "has an audit that is not an object"
        for name in AUDIT_METRICS:
            value = audit.get(name)
            value = value.get("bits") if isinstance(value, dict) else value
            if not _is_metric_value(value):
                return f"has an audit value {name} that is not a number"
    return None


def run_key(record: dict[str, Any]) -> tuple[float, int]:
    """The (gamma, fold) a well-formed record (see record_problem) is the run of, in the
    form RunTask.key has."""
    return (round(float(record["gamma"]), _GAMMA_DECIMALS), int(record["fold"]))


def pending_tasks(tasks: Sequence[RunTask], finished: Sequence[dict[str, Any]]) -> list[RunTask]:
    """The tasks no finished record is the run of: what a resumed sweep still trains."""
    done = {run_key(record) for record in finished}
    return [task for task in tasks if task.key not in done]


def planned_records(tasks: Sequence[RunTask], finished: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The finished records of these tasks' runs: a rerun with fewer gammas summarises
    only its own, although runs.jsonl keeps the others."""
    planned = {task.key for task in tasks}
    return [record for record in finished if run_key(record) in planned]


def run_one(task: RunTask) -> dict[str, Any]:
    """Train on the task's training rows, score its test rows; a JSON-ready record."""
    plan = task.plan
    started = time.perf_counter()
    # One thread per run, in a worker or not (estimator.limit_threads counts blocks open
    # at once in a Dask worker's threads): workers do not fight over cores, and a run's
    # floating-point results do not depend on n_jobs.
    with limit_threads(1):
        estimator = SQNNClassifier(**{**plan.estimator_params, "gamma": task.gamma})
        outcome = pipeline.train(task.train, plan.roles, estimator, **plan.settings.missing)
        record = _scored_record(task, outcome)
    record["seconds"] = time.perf_counter() - started
    record["sqnn_version"] = __version__
    return record


def run_batch(tasks: Sequence[RunTask]) -> list[dict[str, Any]]:
    """The runs of one fold (the same rows and settings, gammas apart) trained together in
    one pass (batched.py) and scored together, each recorded as ``run_one`` records it; a
    run's ``seconds`` is its share of the batch's training and scoring, plus its own audit."""
    plan = tasks[0].plan
    started = time.perf_counter()
    with limit_threads(1):  # as in run_one
        estimator = SQNNClassifier(**plan.estimator_params)
        gammas = [task.gamma for task in tasks]
        outcomes = train_gammas(tasks[0].train, plan.roles, estimator, gammas, **plan.settings.missing)
        evaluations = _batch_evaluations(tasks[0], [outcome.model for outcome in outcomes])
        share = (time.perf_counter() - started) / len(tasks)
        records = []
        for task, outcome, evaluation in zip(tasks, outcomes, evaluations):
            audit_started = time.perf_counter()
            record = _scored_record(task, outcome, evaluation)
            record["seconds"] = share + time.perf_counter() - audit_started
            record["sqnn_version"] = __version__
            records.append(record)
    return records


def _batch_evaluations(task: RunTask, models: Sequence[FittedModel]) -> list[pipeline.Evaluation]:
    """``pipeline.evaluate`` of each model of a batch on the task's test rows, which are
    encoded once (the models share their encoder) and scored on one set of uniforms
    (batched.positive_scores)."""
    settings = task.plan.settings
    X, data, encoding = pipeline.encoded_table(models[0], task.test, settings.drop_missing, settings.inf_as_missing)
    estimators = [model.estimator for model in models]
    scores = positive_scores(estimators, X)
    return [
        pipeline.evaluation_of_scores(
            estimator, positive, data.y, data.groups, encoding, rows_dropped=data.rows_dropped,
            threshold=settings.threshold, min_group_size=settings.min_group_size, weights=data.weights,
            weight_column=data.weight_column,
        )  # fmt: skip
        for estimator, positive in zip(estimators, scores)
    ]


def _scored_record(
    task: RunTask, outcome: pipeline.TrainingOutcome, evaluation: pipeline.Evaluation | None = None
) -> dict[str, Any]:
    """The record of a trained run: its test rows scored (unless ``evaluation`` has them
    scored already) and, if asked, audited."""
    plan, settings = task.plan, task.plan.settings
    if evaluation is None:
        evaluation = pipeline.evaluate(
            outcome.model, task.test, threshold=settings.threshold, min_group_size=settings.min_group_size, **settings.missing
        )
    record: dict[str, Any] = {
        "gamma": task.gamma,
        "fold": task.fold,
        "rows_train": outcome.rows_trained,
        "rows_test": evaluation.result.n,
        "metrics": evaluation.result.to_dict(),
        "final_epoch": outcome.model.estimator.history_[-1],
    }
    if settings.audit:
        how = pipeline.AuditSettings(trees=settings.trees, n_jobs=1, seed=int(plan.estimator_params["random_state"]))
        try:
            record["audit"] = pipeline.audit(outcome.model, task.test, settings=how).audit.to_dict()
        except InputError as exc:
            # A fold's rows can hold a group too small for the audit's stratified split:
            # the run keeps its metrics and says why it has no audit, and the sweep goes on.
            record["audit_error"] = str(exc)
    return record


def batchable(plan: SweepPlan) -> bool:
    """Whether the runs of one fold of this plan train together (batched.BATCHED_METHODS);
    the other methods train one run at a time."""
    return plan.estimator_params.get("method", defaults.METHOD) in BATCHED_METHODS


def work_units(tasks: Sequence[RunTask], workers: int, *, batched: bool = True) -> list[list[RunTask]]:
    """How the tasks are handed out: with ``batched`` and a batchable method, the runs of
    each fold together, a fold split in parts only where there are fewer folds than
    ``workers`` (1 fold on 2 workers: 2 parts); else one run a unit.

    Splitting 3 folds in 6 parts for 2 workers evens their load, but each part prepares
    and encodes its rows and scores on its own, and smaller stacks use a core less well:
    on Adult's default sweep it took 74 s of CPU against 58 s, for no shorter a run."""
    if not tasks or not batched or not batchable(tasks[0].plan):
        return [[task] for task in tasks]
    by_fold: dict[int, list[RunTask]] = {}
    for task in tasks:
        by_fold.setdefault(task.fold, []).append(task)
    parts = math.ceil(max(1, workers) / len(by_fold))
    units = []
    for fold_tasks in by_fold.values():
        size = math.ceil(len(fold_tasks) / min(parts, len(fold_tasks)))
        units += [fold_tasks[start : start + size] for start in range(0, len(fold_tasks), size)]
    return units


def _units(tasks: Sequence[RunTask], n_jobs: int, backend: str, batched: bool) -> list[list[RunTask]]:
    """The work_units ``execute`` runs: on a Dask cluster, whose size is not known here,
    each fold's runs whole."""
    return work_units(tasks, 1 if backend == "dask" else worker_count(n_jobs, len(tasks)), batched=batched)


def run_unit(tasks: Sequence[RunTask]) -> list[dict[str, Any]]:
    """The records of a unit of work_units: one run alone, or a fold's runs batched."""
    return [run_one(tasks[0])] if len(tasks) == 1 else run_batch(tasks)


def worker_count(n_jobs: int, pending: int) -> int:
    """Local worker processes a sweep of ``pending`` runs starts for ``n_jobs``: never more
    than there are runs (each idle worker would still cost a process's memory)."""
    return max(1, min(n_jobs, pending))


def check_backend(backend: str, scheduler: str | None) -> None:
    """Refuse a backend ``execute`` cannot run on, before anything is trained."""
    if backend not in BACKENDS:
        raise ParameterError("{backend} must be one of {choices}, got {got!r}", choices=", ".join(BACKENDS), got=backend)
    if backend == "dask" and not scheduler:
        raise ParameterError("{backend} dask needs {scheduler} ADDRESS (e.g. tcp://10.0.0.5:8786)")
    if backend != "dask" and scheduler:
        raise ParameterError("{scheduler} names a Dask scheduler, which only {backend} dask uses; add {backend} dask")


def execute(
    tasks: Sequence[RunTask],
    *,
    n_jobs: int = 1,
    backend: str = "local",
    scheduler: str | None = None,
    batched: bool = True,
) -> Iterator[dict[str, Any]]:
    """Run the tasks, yielding each record as soon as its run finishes (a batch's
    records as soon as the batch finishes).

    With ``batched`` (and a method batched.py can train together), the runs of a fold
    train in one pass, in the units ``work_units`` makes; else one by one. ``local``
    runs the units in this process (one job or one unit) or on local worker processes
    (``worker_count``); ``dask`` sends them to the Dask cluster at ``scheduler`` through
    joblib's dask backend, one fold a unit. The records are the same whichever way they
    ran, up to the float rounding tests/test_batched.py bounds for batching.
    """
    check_backend(backend, scheduler)
    if not tasks:
        return
    units = _units(tasks, n_jobs, backend, batched)
    if backend == "dask":
        yield from _on_dask(units, scheduler)
        return
    if worker_count(n_jobs, len(units)) == 1:
        for unit in units:
            yield from run_unit(unit)
        return
    yield from _local_pool(units, worker_count(n_jobs, len(units)))


def _on_dask(units: Sequence[Sequence[RunTask]], scheduler: str | None) -> Iterator[dict[str, Any]]:
    import joblib

    try:
        from distributed import Client
    except ImportError:
        raise ParameterError("{backend} dask needs Dask: pip install 'sqnn[dask]'") from None
    try:
        client = Client(scheduler, timeout="10s", set_as_default=False)
    except (OSError, ValueError) as exc:  # ValueError: an address distributed cannot parse
        raise ParameterError("cannot reach the Dask scheduler at {scheduler} {address}: {reason}", address=scheduler, reason=exc) from None
    try:
        with joblib.parallel_config(backend="dask", client=client, wait_for_workers_timeout=30):
            parallel = joblib.Parallel(n_jobs=-1, return_as="generator_unordered")
            for records in parallel(joblib.delayed(run_unit)(unit) for unit in units):
                yield from records
    finally:
        client.close()


def _local_pool(units: Sequence[Sequence[RunTask]], n_jobs: int) -> Iterator[dict[str, Any]]:
    """Run the units of work_units on ``n_jobs`` local worker processes, yielding their
    records as they finish.

    Where the platform can fork, the workers are forked from this process and inherit
    its imports: joblib's loky pool starts fresh interpreters that spend about 3.5 s
    importing torch, scikit-learn and pandas before the first run, a fifth of a default
    COMPAS sweep. Elsewhere (Windows) loky's pool does the job. Either way every worker
    dies with this process (``_die_with_parent``).
    """
    import multiprocessing

    guard = {"initializer": _die_with_parent, "initargs": (os.getpid(),)}
    if "fork" in multiprocessing.get_all_start_methods():
        from concurrent.futures import ProcessPoolExecutor

        pool: Any = ProcessPoolExecutor(max_workers=n_jobs, mp_context=multiprocessing.get_context("fork"), **guard)

        def abandon() -> None:
            pool.shutdown(wait=False, cancel_futures=True)

    else:
        from joblib.externals.loky import ProcessPoolExecutor as LokyPool

        pool = LokyPool(max_workers=n_jobs, **guard)

        def abandon() -> None:
            pool.shutdown(wait=False, kill_workers=True)

    from concurrent.futures import as_completed

    try:
        # Every worker is started here, by this thread, in the first submit (forked
        # workers all at once): Linux's parent-death signal follows the starting thread.
        futures = [pool.submit(run_unit, unit) for unit in units]
        for future in as_completed(futures):
            yield from future.result()
    except BaseException:
        # Ctrl-C or a failed run: drop what has not started rather than wait for it.
        abandon()
        raise
    pool.shutdown()


_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_SYNCHRONIZE = 0x00100000  # the Windows access right to wait on a process
_INFINITE = 0xFFFFFFFF


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker die when the sweep that started it dies, even by SIGKILL, which
    no handler in the parent can catch: an orphaned worker would train on for minutes
    (a loky worker would wait five more for work), holding its memory and the caller's
    stdout and stderr, so a CI step reading them hangs.

    On Linux the kernel sends SIGKILL on the parent's death (PR_SET_PDEATHSIG); the
    parent may have died before the request was made, which getppid then tells. On
    Windows, which does not reparent orphans, a daemon thread waits on a handle to the
    parent; elsewhere one polls getppid, which changes when the worker is orphaned.
    """
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:
                os._exit(1)
            return
    if sys.platform == "win32":
        kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)
        kernel32.OpenProcess.restype = ctypes.c_void_p
        kernel32.WaitForSingleObject.argtypes = (ctypes.c_void_p, ctypes.c_uint32)
        handle = kernel32.OpenProcess(_SYNCHRONIZE, False, parent_pid)
        if not handle:  # the parent is already gone
            os._exit(1)

        def exit_when_parent_exits() -> None:
            kernel32.WaitForSingleObject(handle, _INFINITE)
            os._exit(1)

        threading.Thread(target=exit_when_parent_exits, name="sqnn-parent-watch", daemon=True).start()
        return
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), name="sqnn-parent-watch", daemon=True).start()


def _exit_when_orphaned(parent_pid: int, interval: float = 0.5) -> None:
    while os.getppid() == parent_pid:
        time.sleep(interval)
    os._exit(1)


# -- the directory --------------------------------------------------------------------------
class SweepDirectory:
    """The files of one sweep; only this class reads or writes them."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._lock_fd: int | None = None

    @property
    def runs_path(self) -> Path:
        return self.path / RUNS_FILE

    @contextmanager
    def locked(self) -> Iterator["SweepDirectory"]:
        """Own the directory for the duration: another sweep that tries is refused,
        naming this one. The directory is created if need be (an existing directory
        that is not a sweep's is refused first, so nothing is left in it)."""
        if self.path.exists() and not self.path.is_dir():
            raise ParameterError("{out} '{path}' exists and is not a directory", path=self.path)
        self._refuse_a_foreign_directory()
        self.path.mkdir(parents=True, exist_ok=True)
        lock_path = self.path / LOCK_FILE
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            if not _try_lock(fd):
                raise ParameterError(
                    "'{path}' is in use by another sweep ({owner}); wait for it to finish, or choose another {out}",
                    path=self.path, owner=_describe_owner(lock_path),
                )  # fmt: skip
            owner = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, (json.dumps(owner) + "\n").encode())
            self._lock_fd = fd
            try:
                yield self
            finally:
                # Emptied, not removed: removing it would let a sweep that opened the old
                # file and one that creates a new one both hold "the" lock.
                os.ftruncate(fd, 0)
                self._lock_fd = None
                _unlock(fd)
        finally:
            os.close(fd)

    def _refuse_a_foreign_directory(self) -> None:
        """Refuse a directory that holds something other than a sweep, before anything (the
        lock file included) is written into it."""
        if not self.path.is_dir():
            return
        if (self.path / PLAN_FILE).exists():
            self._recorded_plan()
            return
        # A sweep starting this instant has its lock file and perhaps the temporary file
        # its sweep.json is written to: that is a running sweep, for the lock to name.
        if any(entry.name != LOCK_FILE and not _is_temporary_sweep_file(entry.name) for entry in self.path.iterdir()):
            raise ParameterError(
                "'{path}' holds files but no {plan_file}, so it is not a sweep directory "
                "({overwrite} only replaces a sweep); choose another {out}",
                path=self.path, plan_file=PLAN_FILE,
            )  # fmt: skip

    def open(self, plan: SweepPlan, *, options: dict[str, Any], overwrite: bool) -> None:
        """Start or resume a sweep (inside ``locked``); a directory holding another sweep
        is refused, or with ``overwrite`` cleared of that sweep's files only.

        sweep.json records the plan's fingerprint, which a rerun must match (gammas are
        not part of it: a rerun may add gammas to a sweep), and the latest command's
        options as given.
        """
        if self._lock_fd is None:
            raise RuntimeError("SweepDirectory.open is called inside SweepDirectory.locked")
        # Checked again under the lock: the directory may have changed since.
        self._refuse_a_foreign_directory()
        plan_path = self.path / PLAN_FILE
        if plan_path.exists():
            if self._recorded_plan()["fingerprint"] != _json_round_trip(plan.fingerprint()):
                if not overwrite:
                    raise ParameterError(
                        "'{path}' holds a sweep with other options or data; pass {overwrite} to start it afresh, "
                        "or choose another {out}",
                        path=self.path,
                    )
                self._remove_sweep_files()
        content = {"fingerprint": plan.fingerprint(), "options": options}
        files.atomic_write_text(plan_path, json.dumps(plain(content), indent=2) + "\n")

    def _recorded_plan(self) -> dict[str, Any]:
        """sweep.json's content, or a refusal when it is not a sweep's record."""
        plan_path = self.path / PLAN_FILE
        try:
            recorded = json.loads(plan_path.read_text())
        except (ValueError, RecursionError, OSError):
            recorded = None
        if not isinstance(recorded, dict) or "fingerprint" not in recorded:
            raise ParameterError("'{path}' is not an sqnn sweep's record; choose another {out}", path=plan_path)
        return recorded

    def _remove_sweep_files(self) -> None:
        # The plan goes last: a kill in between leaves a sweep that is still recognised.
        for name in (*_SWEEP_FILES[1:], PLAN_FILE):
            (self.path / name).unlink(missing_ok=True)
        for entry in self.path.iterdir():
            if _is_temporary_sweep_file(entry.name) and entry.is_file():
                entry.unlink(missing_ok=True)

    def finished(self) -> tuple[list[dict[str, Any]], list[str]]:
        """The finished runs' records (first of any duplicates), and why each skipped line
        was skipped: cut short by a kill during its append, or not a well-formed record."""
        if not self.runs_path.exists():
            return [], []
        records: dict[tuple[float, int], dict[str, Any]] = {}
        skipped = []
        for number, line in enumerate(self.runs_path.read_text().splitlines(), 1):
            try:
                record = json.loads(line)
            except (ValueError, RecursionError):
                skipped.append(f"line {number} was cut short by an earlier interruption")
                continue
            problem = record_problem(record)
            if problem is not None:
                skipped.append(f"line {number} {problem}")
                continue
            records.setdefault(run_key(record), record)
        return list(records.values()), skipped

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
        files.atomic_write(csv_path, lambda temporary: frame.to_csv(temporary, index=False))
        files.atomic_write_text(json_path, json.dumps(plain(summary.to_dict()), indent=2, allow_nan=False) + "\n")
        return csv_path, json_path


# Windows locks byte ranges, and a locked range cannot be read by others: the lock is
# taken on a byte past the owner's line, so a refused sweep can still read who holds it.
_WINDOWS_LOCK_OFFSET = 4096


def _try_lock(fd: int) -> bool:
    """Take an exclusive lock on the open file without waiting; False if another holds it.
    The kernel drops it when the holder dies."""
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(fd: int) -> None:
    """Release the lock, also for forked workers that share the open file (closing this
    descriptor alone would leave it held until the last of them exits)."""
    try:
        import fcntl
    except ImportError:
        import msvcrt

        os.lseek(fd, _WINDOWS_LOCK_OFFSET, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(fd, fcntl.LOCK_UN)


def _describe_owner(lock_path: Path) -> str:
    try:
        owner = json.loads(lock_path.read_text())
        return f"PID {owner['pid']} on {owner['host']}, started {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its owner is still writing its name"


def _is_temporary_sweep_file(name: str) -> bool:
    return any(files.is_temporary_of(name, sweep_file) for sweep_file in _SWEEP_FILES)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) == b"\n"


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

    def gated_values(self) -> dict[str, float | None]:
        """The figures a sweep's gates bound: GPA and AUC of the best gamma by dGPA, AUDC of
        the best by dAUDC, Spearman(gamma, 1 - GPA); None where there is no best gamma."""
        best_gpa, best_audc = self.row(self.best_by_d_gpa) or {}, self.row(self.best_by_d_audc) or {}
        return {
            "gpa": best_gpa.get("gpa_mean"),
            "auc": best_gpa.get("auc_mean"),
            "audc": best_audc.get("audc_mean"),
            "spearman_gpa": self.correlations["spearman"]["one_minus_gpa"],
        }

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

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepSummary":
        """The summary :meth:`to_dict` wrote (summary.json), for a caller that checked it."""
        return cls(
            rows=list(data["gammas"]), best_by_d_gpa=data.get("best_gamma_by_d_gpa"),
            best_by_d_audc=data.get("best_gamma_by_d_audc"), best_by_criterion=data.get("best_gamma_by_criterion"),
            correlations=data["correlations"], runs_finished=int(data["runs_finished"]),
            runs_planned=int(data["runs_planned"]), folds=int(data["folds"]), notes=list(data.get("notes") or []),
        )  # fmt: skip


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
    rows = _gamma_rows(records)
    _mark_pareto_fronts(rows)
    for row in rows:
        parts = [row["auc_mean"], row["gpa_mean"], row["audc_mean"]]
        # The paper's model selection, which weighs GPA and AUDC together.
        row["criterion_mean"] = parts[0] + (1 - parts[1]) + (1 - parts[2]) if all(map(_finite, parts)) else None
    return SweepSummary(
        rows=rows,
        best_by_d_gpa=_best_gamma(rows, "d_gpa_mean"),
        best_by_d_audc=_best_gamma(rows, "d_audc_mean"),
        best_by_criterion=_best_gamma(rows, "criterion_mean", largest=True),
        correlations=_correlations(rows),
        runs_finished=len(records),
        runs_planned=runs_planned,
        folds=folds,
        notes=_summary_notes(rows),
    )


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def _gamma_rows(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per gamma: its folds, degenerate folds, and each metric's mean, std and 95 %
    interval for the mean over folds."""
    by_gamma: dict[float, list[dict[str, Any]]] = {}
    for record in records:
        by_gamma.setdefault(run_key(record)[0], []).append(record)
    rows = []
    for gamma in sorted(by_gamma):
        group = by_gamma[gamma]
        row: dict[str, Any] = {
            "gamma": gamma,
            "folds": len(group),
            "degenerate_folds": sum(bool(r["metrics"].get("degenerate")) for r in group),
        }
        failed_audits = [r["audit_error"] for r in group if r.get("audit_error")]
        if failed_audits:
            row["audit_failed_folds"] = len(failed_audits)
            row["audit_error"] = failed_audits[0]
        columns = {m: [r["metrics"].get(m) for r in group] for m in SUMMARY_METRICS}
        if any("audit" in r or "audit_error" in r for r in group):
            columns.update({m: [_audit_value(r, m) for r in group] for m in AUDIT_METRICS})
        for metric, values in columns.items():
            finite = [v for v in values if _finite(v)]
            row[f"{metric}_mean"] = float(np.mean(finite)) if finite else None
            row[f"{metric}_std"] = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
            row[f"{metric}_ci95_lower"], row[f"{metric}_ci95_upper"] = _fold_interval(finite)
        rows.append(row)
    return rows


FOLD_INTERVAL_LEVEL = 0.95


def _fold_interval(values: Sequence[float]) -> tuple[float | None, float | None]:
    """A Student t interval for the mean over folds: mean +- t(k-1) sd / sqrt(k).

    Not a bootstrap: with the usual 3 to 5 folds there are at most a few dozen distinct
    resamples, and a percentile interval from them cannot reach past the folds' own range.
    The t quantile pays for estimating the spread from so few values. Folds share training
    rows, so this is the spread of this cross-validation, a lower bound on the uncertainty
    of a model trained on new data. None with fewer than two folds."""
    if len(values) < 2:
        return None, None
    from scipy.stats import t

    quantile = float(t.ppf((1 + FOLD_INTERVAL_LEVEL) / 2, len(values) - 1))
    mean, half = float(np.mean(values)), quantile * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean - half, mean + half


def _column(rows: Sequence[dict[str, Any]], key: str) -> list[float]:
    """A column of the rows, a missing value as NaN."""
    return [r[key] if r[key] is not None else float("nan") for r in rows]


def _mark_pareto_fronts(rows: list[dict[str, Any]]) -> None:
    auc = _column(rows, "auc_mean")
    for name in ("gpa", "audc"):
        for row, flag in zip(rows, _pareto(list(zip(auc, _column(rows, f"{name}_mean"))))):
            row[f"pareto_{name}"] = flag


def _best_gamma(rows: Sequence[dict[str, Any]], key: str, *, largest: bool = False) -> float | None:
    # A gamma whose model put every row of a fold in one class is no candidate: its DP and
    # EO are trivially 0, and the gates judge the best gammas.
    scored = [(-r[key] if largest else r[key], r["gamma"]) for r in rows if _finite(r[key]) and not r["degenerate_folds"]]
    return min(scored)[1] if scored else None


def _correlations(rows: Sequence[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    gammas = [r["gamma"] for r in rows]
    targets = {
        "one_minus_gpa": [1 - v if math.isfinite(v) else None for v in _column(rows, "gpa_mean")],
        "one_minus_audc": [1 - v if math.isfinite(v) else None for v in _column(rows, "audc_mean")],
        "auc": [v if math.isfinite(v) else None for v in _column(rows, "auc_mean")],
    }
    return {kind: {name: _correlation(gammas, series, kind) for name, series in targets.items()} for kind in ("pearson", "spearman")}


def _summary_notes(rows: Sequence[dict[str, Any]]) -> list[str]:
    notes = []
    if len(rows) < 3:
        notes.append("correlations need at least three gammas")
    unaudited = [r for r in rows if r.get("audit_failed_folds")]
    if unaudited:
        listing = ", ".join(f"{r['gamma']:g} ({r['audit_failed_folds']} of {r['folds']})" for r in unaudited)
        every = all(r["audit_failed_folds"] == r["folds"] for r in unaudited)
        consequence = "those gammas have no audit figures" if every else "the audit means use the other folds"
        notes.append(f"no audit at gamma {listing} fold(s); {consequence}: {unaudited[0]['audit_error']}")
    degenerate = [r for r in rows if r["degenerate_folds"]]
    if degenerate:
        listing = ", ".join(f"{r['gamma']:g} ({r['degenerate_folds']} of {r['folds']})" for r in degenerate)
        notes.append(
            f"DEGENERATE MODELS: at gamma {listing} fold(s), the model predicted one class for every row; "
            "those gammas are never chosen as best, and a gate on them fails"
        )
    return notes


def validation_records(
    frame: pd.DataFrame,
    roles: ColumnRoles,
    estimator_params: dict[str, Any],
    gammas: Sequence[float],
    *,
    folds: int,
    settings: RunSettings = RunSettings(),
    n_jobs: int = 1,
    on_progress: Callable[[int, int], None] | None = None,
    batched: bool = True,
) -> list[dict[str, Any]]:
    """The run records of a sweep of ``gammas`` over ``folds`` stratified folds of
    ``frame``, in memory: the same runs and parallelism as a sweep directory's, without the
    directory (a search for the gamma that meets constraints keeps nothing but its choice).
    ``summarise`` turns them into the sweep's summary."""
    plan = SweepPlan(estimator_params=estimator_params, roles=roles, data_sha256="", folds=folds, settings=settings)
    tasks = make_tasks(plan, gammas, frame, None)
    records = []
    for done, record in enumerate(execute(tasks, n_jobs=n_jobs, batched=batched), 1):
        records.append(record)
        if on_progress is not None:
            on_progress(done, len(tasks))
    return records


# -- the whole sweep --------------------------------------------------------------------------
@dataclass(frozen=True)
class SweepRequest:
    """A sweep to run, all but the data: checked when made, so that a refusal comes before
    any table is read (the data comes to ``run_sweep`` as a SweepData).

    ``estimator`` holds every setting of the models but gamma, which the grid gives:
    ``gammas`` (any order, repeats merged) or, without them, ``steps`` evenly spaced in
    [0, 1]. ``out`` may be given as a str. ``options`` is recorded in sweep.json as given
    (the CLI's command line).
    """

    out: Path
    estimator: SQNNClassifier
    gammas: Sequence[float] | None = None
    steps: int = 11
    folds: int = 3
    settings: RunSettings = RunSettings()
    n_jobs: int = 1
    backend: str = "local"
    scheduler: str | None = None
    batched: bool = True
    """Train the runs of a fold together where the method allows (batched.py); False
    trains them one by one, to the same results up to float rounding."""
    overwrite: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    grid: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "out", Path(self.out))
        object.__setattr__(self, "grid", gamma_grid(self.gammas, self.steps))
        check_backend(self.backend, self.scheduler)
        files.check_output_directory(self.out)

    @property
    def estimator_params(self) -> dict[str, Any]:
        params = self.estimator.get_params()
        return {k: v for k, v in params.items() if k != "gamma"} | {"hidden": list(params["hidden"])}


@dataclass(frozen=True)
class SweepData:
    """The table the sweep cross-validates on (or trains on, with a fixed ``test_frame``).

    The checksums identify the data in sweep.json, so that a rerun on other data is
    caught; None: hashed from the frame (the CLI passes its files' checksums).
    """

    frame: pd.DataFrame
    roles: ColumnRoles
    test_frame: pd.DataFrame | None = None
    data_sha256: str | None = None
    test_sha256: str | None = None


@dataclass(frozen=True)
class SweepNote:
    """A line for the user before training starts. Like ParameterError, it names the
    parameters it mentions as ``{field}``s, which ``worded`` fills in a front end's way."""

    template: str
    values: dict[str, Any] = field(default_factory=dict)
    parameters: tuple[str, ...] = ()
    warning: bool = False

    def worded(self, name: Callable[[str], str] = str) -> str:
        return self.template.format(**{parameter: name(parameter) for parameter in self.parameters}, **self.values)

    def __str__(self) -> str:
        return self.worded()


@dataclass(frozen=True)
class SweepOutcome:
    """What ``run_sweep`` did: the summary and where it is, and the runs it found, trained
    or was interrupted in."""

    summary: SweepSummary
    summary_csv: Path
    summary_json: Path
    written_by_caller: tuple[Path, ...]
    """What ``on_summary`` wrote into the directory (the CLI's trade-off plot)."""
    planned: int
    already_finished: int
    pending: int
    """Runs this call set out to train; with ``interrupted``, some of them did not finish."""
    ignored_lines: tuple[str, ...]
    """Why each unusable line of runs.jsonl was skipped."""
    interrupted: bool


def run_sweep(
    request: SweepRequest,
    data: SweepData,
    *,
    on_note: Callable[[SweepNote], None] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    on_summary: Callable[[SweepSummary, Path], Path | None] | None = None,
) -> SweepOutcome:
    """Plan, resume, run and summarise a sweep in ``request.out``.

    The directory is locked throughout (another sweep into it is refused). The runs
    recorded there are kept and not trained again; every run that finishes is appended at
    once. ``on_note`` hears what is resumed and what is about to be trained,
    ``on_progress(done, total)`` follows the runs, and ``on_summary(summary, directory)``
    may write files of its own beside the summary while the lock is still held. A
    KeyboardInterrupt during the runs keeps those that finished, summarises them and
    returns with ``interrupted``.
    """
    plan = _plan(request, data)
    # Every run is laid out (and the data checked) before the directory is touched, so a
    # refused table leaves no sweep behind that the corrected command would then clash with.
    tasks = make_tasks(plan, request.grid, data.frame, data.test_frame)
    with SweepDirectory(request.out).locked() as directory:
        directory.open(plan, options=request.options, overwrite=request.overwrite)
        finished, ignored = directory.finished()
        pending = pending_tasks(tasks, finished)
        if on_note is not None:
            counts = {"planned": len(tasks), "pending": pending, "resumed": bool(finished)}
            for note in _start_notes(request, plan, ignored=ignored, **counts):
                on_note(note)
        interrupted = _train(directory, pending, request, on_progress)
        records, _ = directory.finished()
        summary = summarise(planned_records(tasks, records), runs_planned=len(tasks), folds=plan.folds)
        csv_path, json_path = directory.write_summary(summary)
        written = on_summary(summary, directory.path) if on_summary is not None else None
    return SweepOutcome(
        summary=summary, summary_csv=csv_path, summary_json=json_path, written_by_caller=(written,) if written else (),
        planned=len(tasks), already_finished=len(tasks) - len(pending), pending=len(pending), ignored_lines=tuple(ignored),
        interrupted=interrupted,
    )  # fmt: skip


def _plan(request: SweepRequest, data: SweepData) -> SweepPlan:
    fixed_test = data.test_frame is not None
    return SweepPlan(
        estimator_params=request.estimator_params,
        roles=data.roles,
        data_sha256=data.data_sha256 or _frame_sha256(data.frame),
        folds=1 if fixed_test else request.folds,
        test_sha256=(data.test_sha256 or _frame_sha256(data.test_frame)) if fixed_test else None,
        settings=request.settings,
    )


def _frame_sha256(frame: pd.DataFrame) -> str:
    """A table's identity when no file's checksum is given: its column names and values."""
    digest = hashlib.sha256(json.dumps([str(c) for c in frame.columns]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def _start_notes(
    request: SweepRequest, plan: SweepPlan, *, planned: int, pending: Sequence[RunTask], resumed: bool, ignored: list[str]
) -> list[SweepNote]:
    """What a sweep says before it trains: lines of runs.jsonl it ignores, what it resumes,
    and how many runs it is about to train, how."""
    notes = []
    if ignored:
        more = f"; and {len(ignored) - 3} more" if len(ignored) > 3 else ""
        notes.append(SweepNote(
            "{count} line(s) of {runs_file} are ignored: {reasons}{more}",
            {"count": len(ignored), "runs_file": RUNS_FILE, "reasons": "; ".join(ignored[:3]), "more": more}, warning=True,
        ))  # fmt: skip
    if resumed:
        notes.append(SweepNote(
            "resuming {directory}/: {done} of {planned} runs already finished",
            {"directory": request.out, "done": planned - len(pending), "planned": planned},
        ))  # fmt: skip
    values = {"pending": len(pending), "gammas_count": len(request.grid), "folds_count": plan.folds}
    how, parameters = "", ()
    if request.backend == "dask":
        how, values["address"] = ", on the Dask cluster at {address}", request.scheduler
    elif pending:
        units = _units(pending, request.n_jobs, request.backend, request.batched)
        values["workers"] = workers = worker_count(request.n_jobs, len(units))
        how = ", {workers} at a time"
        if workers < request.n_jobs:
            how, values["jobs"], parameters = how + " ({n_jobs} {jobs} capped at the runs to train)", request.n_jobs, ("n_jobs",)
    if pending:
        how, parameters = how + _batching_note(request, plan, pending, values), (*parameters, "method")
    notes.append(SweepNote("{pending} run(s) to train: {gammas_count} gammas x {folds_count} fold(s)" + how, values, parameters))
    return notes


def _batching_note(request: SweepRequest, plan: SweepPlan, pending: Sequence[RunTask], values: dict[str, Any]) -> str:
    """How the runs train: the batches of a fold's gammas, or why one by one (the
    method); fills ``values``."""
    values["method_name"] = plan.estimator_params.get("method", defaults.METHOD)
    if not batchable(plan):
        values["batched"] = " and ".join(BATCHED_METHODS)
        return "; {method} {method_name} trains them one by one (only {batched} trains a fold's gammas together)"
    units = _units(pending, request.n_jobs, request.backend, request.batched)
    values["batches"] = sum(len(unit) > 1 for unit in units)
    return ", {batches} batch(es) of a fold's gammas trained together" if values["batches"] else ""


def _train(
    directory: SweepDirectory, tasks: Sequence[RunTask], request: SweepRequest, on_progress: Callable[[int, int], None] | None
) -> bool:
    """Run the tasks, appending each record as it comes; True when interrupted (Ctrl-C)."""
    try:
        how = {"n_jobs": request.n_jobs, "backend": request.backend, "scheduler": request.scheduler, "batched": request.batched}
        runs = execute(tasks, **how)
        for done, record in enumerate(runs, 1):
            directory.append(record)
            if on_progress is not None:
                on_progress(done, len(tasks))
    except KeyboardInterrupt:
        return True
    return False
