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
from sqnn_cli.sweep import gamma_grid, summarise

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
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            path = out / "runs.jsonl"
            if path.exists() and len(path.read_text().splitlines()) >= 2:
                break
            time.sleep(0.05)
        assert process.poll() is None, "the sweep finished before it could be killed; make it slower"
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait()
    finished_before = len(runs_tolerant(out))
    assert 2 <= finished_before < 12
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
    # A shell that starts jobs in the background (as CI may) leaves SIGINT ignored, and
    # Python then never raises KeyboardInterrupt; give the sweep a real Ctrl-C.
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not ((out / "runs.jsonl").exists() and (out / "runs.jsonl").read_text()):
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr and "rerun the same command to resume" in stderr
    assert "Traceback" not in stderr
    finished = len(runs_tolerant(out))
    assert json.loads((out / "summary.json").read_text())["runs_finished"] == finished >= 1
