"""sweep-gamma: the runs file, resuming, refusals, gates, parallel and Dask backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sqnn_cli.cli import app
from sqnn_cli.errors import InputError
from sqnn_cli.sweep import (
    LOCK_FILE, SUMMARY_METRICS, SweepDirectory, gamma_grid, pending_tasks, record_problem, run_key, summarise, worker_count,
)  # fmt: skip

from .processes import paused, recorded_runs, wait_until

runner = CliRunner()
TINY = ["--epochs", "2", "--hidden", "8", "--code-size", "4", "--samples", "4", "--batch-size", "64"]


@pytest.fixture
def table(tmp_path, make_table) -> Path:
    path = tmp_path / "table.csv"
    make_table(240).to_csv(path, index=False)
    return path


def sweep(table: Path, out: Path, *extra: str):
    return runner.invoke(app, ["sweep-gamma", str(table), "-s", "group", "--out", str(out), *TINY, *extra])


def runs(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]


def keyed(records: list[dict]) -> dict:
    return {(r["gamma"], r["fold"]): r["metrics"] for r in records}


def test_runs_file_and_summary(table, tmp_path):
    out = tmp_path / "sweep"
    result = sweep(table, out, "--steps", "3", "--folds", "2", "--plot", "--json")
    assert result.exit_code == 0, result.output
    records = runs(out)
    assert sorted((r["gamma"], r["fold"]) for r in records) == [(g, f) for g in (0.0, 0.5, 1.0) for f in (0, 1)]
    assert {"auc", "gpa", "audc", "d_gpa", "groups"} <= set(records[0]["metrics"])
    summary = json.loads(result.stdout)
    assert [row["gamma"] for row in summary["gammas"]] == [0.0, 0.5, 1.0]
    assert {"auc_mean", "auc_std", "gpa_mean", "pareto_gpa", "pareto_audc"} <= set(summary["gammas"][0])
    assert summary["best_gamma_by_d_gpa"] in (0.0, 0.5, 1.0)
    assert set(summary["correlations"]["spearman"]) == {"one_minus_gpa", "one_minus_audc", "auc"}
    assert json.loads((out / "summary.json").read_text())["runs_finished"] == 6
    assert len(pd.read_csv(out / "summary.csv")) == 3
    assert (out / "tradeoff.png").read_bytes()[:4] == b"\x89PNG"
    recorded = json.loads((out / "sweep.json").read_text())
    assert recorded["options"]["epochs"] == 2 and recorded["fingerprint"]["folds"] == 2


def test_rerun_resumes_and_never_rewrites(table, tmp_path):
    out = tmp_path / "sweep"
    assert sweep(table, out, "--gammas", "0,0.5", "--folds", "2").exit_code == 0
    before = (out / "runs.jsonl").read_bytes()
    again = sweep(table, out, "--gammas", "0,0.5", "--folds", "2")
    assert again.exit_code == 0 and "0 run(s) to train" in again.stderr
    assert (out / "runs.jsonl").read_bytes() == before
    extended = sweep(table, out, "--gammas", "0,0.25,0.5", "--folds", "2")
    assert extended.exit_code == 0
    assert (out / "runs.jsonl").read_bytes().startswith(before)
    assert len(runs(out)) == 6


def test_a_torn_last_line_is_skipped_and_terminated(table, tmp_path):
    out = tmp_path / "sweep"
    assert sweep(table, out, "--gammas", "0,1", "--folds", "2").exit_code == 0
    lines = (out / "runs.jsonl").read_text().splitlines()
    (out / "runs.jsonl").write_text("\n".join(lines[:3]) + "\n" + lines[3][:40])
    result = sweep(table, out, "--gammas", "0,1", "--folds", "2")
    assert result.exit_code == 0 and "cut short" in result.stderr
    assert sorted((r["gamma"], r["fold"]) for r in runs_tolerant(out)) == [(0.0, 0), (0.0, 1), (1.0, 0), (1.0, 1)]


def runs_tolerant(out: Path) -> list[dict]:
    records = []
    for line in (out / "runs.jsonl").read_text().splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


def test_other_options_into_the_same_directory_are_refused(table, tmp_path):
    out = tmp_path / "sweep"
    assert sweep(table, out, "--gammas", "0,1", "--folds", "2").exit_code == 0
    refused = sweep(table, out, "--gammas", "0,1", "--folds", "2", "--lr", "0.01")
    assert refused.exit_code == 2 and "other options" in refused.stderr and "--overwrite" in refused.stderr
    replaced = sweep(table, out, "--gammas", "0,1", "--folds", "2", "--lr", "0.01", "--overwrite")
    assert replaced.exit_code == 0 and len(runs(out)) == 4


def test_gates_exit_1_and_name_the_option(table, tmp_path):
    out = tmp_path / "sweep"
    passed = sweep(table, out, "--gammas", "0,0.5,1", "--folds", "2", "--min-auc", "0.0", "--max-gpa", "1")
    assert passed.exit_code == 0, passed.output
    failed = sweep(table, out, "--gammas", "0,0.5,1", "--folds", "2", "--min-auc", "0.999")
    assert failed.exit_code == 1 and "--min-auc" in failed.stderr
    strict = sweep(table, out, "--gammas", "0,0.5,1", "--folds", "2", "--min-correlation", "1", "--json")
    spearman = json.loads(strict.stdout)["correlations"]["spearman"]["one_minus_gpa"]
    assert strict.exit_code == (0 if spearman is not None and spearman >= 1 else 1)
    assert "--min-correlation" in strict.stderr
    impossible = sweep(table, out, "--gammas", "0,0.5,1", "--folds", "2", "--min-correlation", "1.5")
    assert impossible.exit_code == 2


def test_parallel_runs_equal_sequential_runs(table, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert sweep(table, one, "--gammas", "0,0.5,1", "--folds", "2").exit_code == 0
    assert sweep(table, two, "--gammas", "0,0.5,1", "--folds", "2", "--n-jobs", "2").exit_code == 0
    assert keyed(runs(one)) == keyed(runs(two))


def test_dask_backend_equals_local(table, tmp_path):
    from distributed import LocalCluster

    local = tmp_path / "local"
    assert sweep(table, local, "--gammas", "0,1", "--folds", "2").exit_code == 0
    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        result = sweep(
            table, tmp_path / "dask", "--gammas", "0,1", "--folds", "2", "--backend", "dask",
            "--scheduler", cluster.scheduler_address,
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert keyed(runs(tmp_path / "dask")) == keyed(runs(local))


def test_killed_sweep_resumes_with_every_run_exactly_once(table, tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sqnn_cli", "sweep-gamma", str(table), "-s", "group", "--out", str(out),
               "--steps", "6", "--folds", "2", *TINY[:-2], "--batch-size", "8", "--epochs", "12"]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: recorded_runs(out) >= 2, process, timeout=120, what="two runs were recorded")
        with paused(process):
            assert recorded_runs(out) < 12, "the sweep finished its runs before it was stopped; make it slower"
            second = runner.invoke(app, ["sweep-gamma", *command[4:]])
            assert second.exit_code == 2 and f"in use by another sweep (PID {process.pid} on" in second.stderr
            process.kill()
    finally:
        process.kill()
        process.wait()
    finished_before = len(runs_tolerant(out))
    assert 2 <= finished_before < 12
    # The killed sweep's lock file is still there; its lock died with it.
    assert (out / LOCK_FILE).read_text()
    resumed = subprocess.run(command, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    keys = [(r["gamma"], r["fold"]) for r in runs_tolerant(out)]
    assert len(keys) == len(set(keys)) == 12


def test_gamma_grid():
    assert gamma_grid(None, 11)[1] == 0.1
    assert gamma_grid([0.3, 0.1, 0.1], 11) == (0.1, 0.3)
    with pytest.raises(ValueError):
        gamma_grid([1.5], 11)


def test_summary_marks_pareto_and_correlations():
    records = [
        {"gamma": g, "fold": f, "metrics": {"auc": 0.8 - g / 4 + f / 100, "gpa": 0.3 - g / 4, "audc": 0.1 - g / 20,
         "d_gpa": 0.5, "d_audc": 0.3 - g / 10 + f / 50}}
        for g in (0.0, 0.5, 1.0) for f in (0, 1)
    ]  # fmt: skip
    summary = summarise(records, runs_planned=6, folds=2)
    assert [row["pareto_gpa"] for row in summary.rows] == [True, True, True]
    assert summary.correlations["spearman"]["one_minus_gpa"] == pytest.approx(1.0)
    assert summary.correlations["spearman"]["auc"] == pytest.approx(-1.0)
    assert summary.best_by_d_audc == 1.0


def test_best_gamma_by_the_papers_criterion():
    # AUC + (1 - GPA) + (1 - AUDC): 2.40, 2.63, 2.50, so the middle gamma wins although
    # the last one is fairer on both measures.
    points = {0.0: (0.8, 0.3, 0.1), 0.5: (0.75, 0.1, 0.02), 1.0: (0.5, 0.0, 0.0)}
    records = [
        {"gamma": g, "fold": 0, "metrics": {"auc": auc, "gpa": gpa, "audc": audc, "d_gpa": 1 - auc + gpa,
         "d_audc": 1 - auc + audc}}
        for g, (auc, gpa, audc) in points.items()
    ]  # fmt: skip
    summary = summarise(records, runs_planned=3, folds=1)
    assert summary.best_by_criterion == 0.5
    assert summary.row(0.5)["criterion_mean"] == pytest.approx(2.63)
    assert summary.to_dict()["best_gamma_by_criterion"] == 0.5


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_keeps_finished_runs_and_prints_their_summary(table, tmp_path, jobs):
    out = tmp_path / "sweep"
    command = [sys.executable, "-m", "sqnn_cli", "sweep-gamma", str(table), "-s", "group", "--out", str(out),
               "--steps", "6", "--folds", "2", *TINY[:-2], "--batch-size", "8", "--epochs", "12", "--n-jobs", jobs]  # fmt: skip
    if jobs != "1":
        # Two workers train the two folds' batches at once and may finish them together;
        # joint trains one run at a time, so most runs are still to come at the Ctrl-C.
        command += ["--method", "joint"]
    # A shell that starts jobs in the background (as CI may) leaves SIGINT ignored, and
    # Python then never raises KeyboardInterrupt; give the sweep a real Ctrl-C.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    wait_until(lambda: recorded_runs(out) > 0, process, timeout=120, what="a run was recorded")
    # Stopped, it cannot finish its runs before the Ctrl-C; the signal waits for it to continue.
    with paused(process):
        assert recorded_runs(out) < 12, "the sweep finished its runs before it was stopped; make it slower"
        process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    finished = len(runs_tolerant(out))
    assert json.loads((out / "summary.json").read_text())["runs_finished"] == finished >= 1


# -- worker processes die with the sweep ------------------------------------------------------
# Runs the CLI as a platform without fork would: on loky's pool of fresh interpreters.
ON_LOKY = (
    "import multiprocessing, sys; multiprocessing.get_all_start_methods = lambda: ['spawn']; "
    "from sqnn_cli.cli import main; main()"
)


def descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").glob("*"):
            children = [int(c) for c in (task / "children").read_text().split()] if (task / "children").exists() else []
            found += children
            frontier += children
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has exited; only its parent's wait is missing


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts worker processes through Linux's /proc")
@pytest.mark.parametrize("pool", ["fork", "loky"])
def test_workers_die_within_seconds_of_a_kill_9_of_the_sweep(table, tmp_path, pool):
    out = tmp_path / "sweep"
    launcher = [sys.executable, "-m", "sqnn_cli"] if pool == "fork" else [sys.executable, "-c", ON_LOKY]
    # joint trains one run at a time (no batched step), so runs.jsonl gets its first line
    # while most runs are still to train, as the loky branch below waits for.
    command = [*launcher, "sweep-gamma", str(table), "-s", "group", "--out", str(out), "--steps", "6", "--folds", "2",
               *TINY[:-2], "--batch-size", "8", "--epochs", "12", "--n-jobs", "2", "--method", "joint"]  # fmt: skip
    # Pipes, as a CI step has: they reach their end only when no process holds them.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        wait_until(lambda: len(descendants(process.pid)) >= 2, process, timeout=60, what="two workers started")
        if pool == "loky":
            # A fresh interpreter takes seconds to import torch; wait until runs are under way.
            wait_until(lambda: recorded_runs(out) > 0, process, timeout=60, what="a run was recorded")
        with paused(process):
            workers = descendants(process.pid)
            assert recorded_runs(out) < 12 and len(workers) >= 2, "the sweep finished before it could be killed; make it slower"
            os.kill(process.pid, signal.SIGKILL)
        killed = time.monotonic()
        process.communicate(timeout=5)
        while any(alive(pid) for pid in workers) and time.monotonic() - killed < 5:
            time.sleep(0.02)
        assert not [pid for pid in workers if alive(pid)], f"workers alive {time.monotonic() - killed:.1f} s after the kill"
    finally:
        for pid in [process.pid, *workers]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        process.wait()


# -- one sweep per directory ------------------------------------------------------------------
def test_a_sweep_into_a_directory_another_sweep_holds_is_refused_naming_it(table, tmp_path):
    out = tmp_path / "sweep"
    with SweepDirectory(out).locked():
        refused = sweep(table, out, "--gammas", "0,1", "--folds", "2")
    assert refused.exit_code == 2, refused.output
    assert f"in use by another sweep (PID {os.getpid()} on " in refused.stderr and ", started 20" in refused.stderr
    assert not (out / "runs.jsonl").exists() and not (out / "sweep.json").exists()
    assert (out / LOCK_FILE).read_text() == ""  # released, and emptied of its owner


HOLD_LOCK = """
import fcntl, json, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"pid": os.getpid(), "host": "elsewhere", "started": "2026-01-02T03:04:05+00:00"}).encode())
print("locked", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="the holder takes the lock with fcntl")
def test_the_lock_of_a_killed_sweep_is_taken_over(table, tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(out / LOCK_FILE)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "locked\n"
        refused = sweep(table, out, "--gammas", "0,1", "--folds", "2")
        assert refused.exit_code == 2
        assert f"(PID {holder.pid} on elsewhere, started 2026-01-02T03:04:05+00:00)" in refused.stderr
    finally:
        holder.kill()
        holder.wait()
    assert json.loads((out / LOCK_FILE).read_text())["pid"] == holder.pid
    taken_over = sweep(table, out, "--gammas", "0,1", "--folds", "2")
    assert taken_over.exit_code == 0, taken_over.output
    assert len(runs(out)) == 4


# -- --overwrite replaces sweeps only ---------------------------------------------------------
@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_a_directory_that_is_not_a_sweep_is_never_written_to(table, tmp_path, overwrite):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.csv").write_text("the user's own\n")
    refused = sweep(table, out, "--gammas", "0,1", "--folds", "2", *overwrite)
    assert refused.exit_code == 2 and "not a sweep directory" in refused.stderr
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]
    assert (out / "summary.csv").read_text() == "the user's own\n"


def test_a_sweep_json_that_is_not_a_sweeps_is_never_replaced(table, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "sweep.json").write_text('{"mine": true}\n')
    refused = sweep(table, out, "--gammas", "0,1", "--folds", "2", "--overwrite")
    assert refused.exit_code == 2 and "not an sqnn sweep's record" in refused.stderr
    assert (out / "sweep.json").read_text() == '{"mine": true}\n'


def test_overwrite_removes_only_the_sweeps_own_files(table, tmp_path):
    out = tmp_path / "sweep"
    assert sweep(table, out, "--gammas", "0,1", "--folds", "2", "--plot").exit_code == 0
    (out / "notes.txt").write_text("keep me\n")
    (out / ".summary.csv.999999999.0badf00d.partial").write_text("left by a kill during an atomic write\n")
    replaced = sweep(table, out, "--gammas", "0.5", "--folds", "2", "--lr", "0.01", "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    kept = [LOCK_FILE, "notes.txt", "runs.jsonl", "summary.csv", "summary.json", "sweep.json"]
    assert sorted(p.name for p in out.iterdir()) == kept  # tradeoff.png and the temporary file are gone
    assert {r["gamma"] for r in runs(out)} == {0.5}


# -- malformed lines of runs.jsonl ------------------------------------------------------------
METRICS = {metric: 0.5 for metric in SUMMARY_METRICS} | {"gpa": None}
GOOD = {"gamma": 0.5, "fold": 1, "metrics": METRICS}


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"metrics": None}, "no metrics object"),
        ({"metrics": [0.8]}, "no metrics object"),
        ({"gamma": "0.5"}, "no gamma"),
        ({"gamma": True}, "no gamma"),
        ({"gamma": 1.5}, "no gamma"),
        ({"fold": -1}, "no fold"),
        ({"fold": 1.5}, "no fold"),
        ({"fold": None}, "no fold"),
        ({"metrics": {**METRICS, "auc": "0.8"}}, "metric auc"),
        ({"metrics": {}}, "no metric auc"),
        ({"gamma": 10**400}, "no gamma"),
        ({"metrics": {**METRICS, "auc": -(10**400)}}, "metric auc"),
        ({"audit": [1]}, "audit that is not an object"),
        ({"audit": {"adrg": {"bits": "x"}}}, "audit value adrg"),
    ],
)
def test_record_problem_names_what_is_wrong(change, problem):
    assert record_problem(GOOD) is None
    assert record_problem({**GOOD, "audit": {"adrg": 0.1, "mi_joint": {"bits": 0.2}}}) is None
    assert problem in record_problem({k: v for k, v in {**GOOD, **change}.items() if v is not None})


def test_malformed_lines_are_reported_skipped_and_their_runs_trained_again(table, tmp_path):
    out = tmp_path / "sweep"
    assert sweep(table, out, "--gammas", "0,1", "--folds", "2").exit_code == 0
    good = (out / "runs.jsonl").read_text().splitlines()
    broken = [json.loads(line) for line in good[2:]]
    del broken[0]["metrics"]
    broken[1]["gamma"] = "one"
    extra = {**json.loads(good[0]), "fold": 7}  # well formed, but no run of this sweep
    (out / "runs.jsonl").write_text("\n".join([*good[:2], *map(json.dumps, broken), json.dumps(extra), "[]"]) + "\n")
    result = sweep(table, out, "--gammas", "0,1", "--folds", "2", "--json")
    assert result.exit_code == 0, result.output
    assert "3 line(s) of runs.jsonl are ignored: line 3 has no metrics object; line 4 has no gamma in [0, 1]; line 6 " in result.stderr
    assert "2 run(s) to train" in result.stderr
    assert json.loads(result.stdout)["runs_finished"] == 4  # the fold-7 line is not in the summary


# -- --n-jobs ---------------------------------------------------------------------------------
def test_n_jobs_is_capped_at_the_runs_to_train(table, tmp_path, monkeypatch):
    import concurrent.futures

    started = []

    class CountingPool(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, max_workers, **kwargs):
            started.append(max_workers)
            super().__init__(max_workers, **kwargs)

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", CountingPool)
    result = sweep(table, tmp_path / "sweep", "--gammas", "0,1", "--folds", "2", "--n-jobs", "200")
    assert result.exit_code == 0, result.output
    assert "4 run(s) to train: 2 gammas x 2 fold(s), 4 at a time (--n-jobs 200 capped at the runs to train)" in result.stderr
    assert started == [4]
    assert [worker_count(1000, 4), worker_count(2, 4), worker_count(8, 1), worker_count(8, 0)] == [4, 2, 1, 1]


def test_resume_keys_name_a_run_whichever_way_its_gamma_was_written():
    from sqnn_cli.sweep import RunTask

    # Only a task's key matters here, not its rows or plan.
    tasks = [RunTask(gamma, fold, None, None, None) for gamma in gamma_grid(None, 11)[:4] for fold in (0, 1)]
    finished = [{"gamma": 0.30000000000000004, "fold": 1, "metrics": {}}, {"gamma": 0.1, "fold": 0, "metrics": {}}]
    assert run_key(finished[0]) == (0.3, 1)
    assert [task.key for task in pending_tasks(tasks, finished)] == [(0.0, 0), (0.0, 1), (0.1, 1), (0.2, 0), (0.2, 1), (0.3, 0)]


def test_a_gamma_list_beyond_the_bound_is_refused():
    with pytest.raises(InputError, match="at most"):
        gamma_grid([i / 100_000 for i in range(5000)], 11)


# -- run_sweep: the sweep as a library call ---------------------------------------------------
def tiny_request(out: Path, **settings):
    from sqnn_cli.estimator import SQNNClassifier
    from sqnn_cli.sweep import SweepRequest

    estimator = SQNNClassifier(epochs=2, hidden=(8,), code_size=4, n_samples=4, batch_size=64)
    return SweepRequest(out=out, estimator=estimator, **{"gammas": [0, 0.5], "folds": 2, **settings})


@pytest.fixture
def tiny_data(make_table):
    from sqnn_cli.data import resolve_roles
    from sqnn_cli.sweep import SweepData

    frame = make_table(120)
    return SweepData(frame, resolve_roles(frame, target=None, sensitive=["group"]))


def test_run_sweep_trains_every_run_and_summarises_without_the_cli(tiny_data, tmp_path):
    from sqnn_cli.sweep import run_sweep

    notes, progress, seen = [], [], []

    def on_summary(summary, directory):
        # Called with the lock still held: another sweep into the directory is refused.
        with pytest.raises(InputError, match="in use by another sweep"):
            with SweepDirectory(directory).locked():
                pass
        seen.append(summary)
        (directory / "mine.txt").write_text("written beside the summary\n")
        return directory / "mine.txt"

    outcome = run_sweep(tiny_request(tmp_path / "sweep"), tiny_data, on_note=notes.append,
                        on_progress=lambda done, total: progress.append((done, total)), on_summary=on_summary)  # fmt: skip
    assert (outcome.planned, outcome.already_finished, outcome.pending, outcome.interrupted) == (4, 0, 4, False)
    assert [row["gamma"] for row in outcome.summary.rows] == [0.0, 0.5] and outcome.summary.runs_finished == 4
    assert progress == [(1, 4), (2, 4), (3, 4), (4, 4)] and seen == [outcome.summary]
    assert outcome.written_by_caller == (tmp_path / "sweep" / "mine.txt",)
    assert json.loads(outcome.summary_json.read_text())["runs_finished"] == 4
    assert [str(note) for note in notes] == [
        "4 run(s) to train: 2 gammas x 2 fold(s), 1 at a time, 2 batch(es) of a fold's gammas trained together"
    ]
    # Without a file's checksum, the data is identified by its contents.
    assert len(json.loads((tmp_path / "sweep" / "sweep.json").read_text())["fingerprint"]["data_sha256"]) == 64


def test_run_sweep_resumes_and_trains_nothing_twice(tiny_data, tmp_path):
    from sqnn_cli.sweep import SweepData, run_sweep

    out = tmp_path / "sweep"
    run_sweep(tiny_request(out), tiny_data)
    before = (out / "runs.jsonl").read_bytes()
    notes: list = []
    again = run_sweep(tiny_request(out, n_jobs=3), tiny_data, on_note=notes.append)
    assert (again.planned, again.already_finished, again.pending) == (4, 4, 0)
    assert (out / "runs.jsonl").read_bytes() == before and again.summary.runs_finished == 4
    assert [str(note) for note in notes] == [f"resuming {out}/: 4 of 4 runs already finished", "0 run(s) to train: 2 gammas x 2 fold(s)"]
    other = SweepData(tiny_data.frame.iloc[::-1], tiny_data.roles)
    with pytest.raises(InputError, match="other options or data; pass overwrite to start it afresh, or choose another out"):
        run_sweep(tiny_request(out), other)


def test_an_interrupted_sweep_keeps_its_finished_runs(tiny_data, tmp_path):
    from sqnn_cli.sweep import run_sweep

    def ctrl_c_after_the_second(done, total):
        if done == 2:
            raise KeyboardInterrupt

    out = tmp_path / "sweep"
    outcome = run_sweep(tiny_request(out), tiny_data, on_progress=ctrl_c_after_the_second)
    assert outcome.interrupted and outcome.summary.runs_finished == 2 == len(runs(out))
    assert json.loads((out / "summary.json").read_text())["runs_finished"] == 2
    notes: list = []
    resumed = run_sweep(tiny_request(out, n_jobs=9), tiny_data, on_note=notes.append)
    assert (resumed.already_finished, resumed.pending, resumed.interrupted) == (2, 2, False)
    assert str(notes[-1]) == "2 run(s) to train: 2 gammas x 2 fold(s), 2 at a time (n_jobs 9 capped at the runs to train)"
    assert sorted(run_key(record) for record in runs(out)) == [(g, f) for g in (0.0, 0.5) for f in (0, 1)]


def test_a_request_names_parameters_and_the_cli_words_them_as_flags(tmp_path):
    from sqnn_cli.cli import _flag

    with pytest.raises(InputError) as refused:
        tiny_request(tmp_path / "sweep", backend="dask")
    assert str(refused.value) == "backend dask needs scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)"
    assert refused.value.worded(_flag) == "--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)"
    with pytest.raises(InputError, match="^steps must be at least 2, got 1$"):
        tiny_request(tmp_path / "sweep", gammas=None, steps=1)
    assert not (tmp_path / "sweep").exists()



def test_an_audited_sweep_records_and_summarises_the_audit(tiny_data, tmp_path):
    from sqnn_cli.sweep import RunSettings, run_sweep

    outcome = run_sweep(tiny_request(tmp_path / "sweep", gammas=[0.5], settings=RunSettings(audit=True, trees=5)), tiny_data)
    assert all(record_problem(record) is None and "adrg" in record["audit"] for record in runs(tmp_path / "sweep"))
    assert outcome.summary.rows[0]["adrg_mean"] is not None


def test_a_fold_whose_groups_cannot_be_audited_keeps_its_run_and_says_why(tmp_path):
    """A group of three rows cannot be split for every fold's audit: those runs keep their
    metrics, the audit means use the other folds, and the summary names them."""
    from .conftest import synthetic_table

    table = synthetic_table(300)
    table.loc[table.index[:3], "group"] = "tiny"
    data = tmp_path / "tiny.csv"
    table.to_csv(data, index=False)
    out = tmp_path / "sweep"
    args = ["sweep-gamma", str(data), "-s", "group", "--gammas", "0", "--folds", "3", "--audit", "--trees", "3"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json", *TINY])
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    row = summary["gammas"][0]
    assert row["folds"] == 3 and 1 <= row["audit_failed_folds"] <= 3
    assert any("no audit at gamma 0" in note and "single row" in note for note in summary["notes"])
