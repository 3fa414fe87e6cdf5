"""Progress in a log: plain lines on stderr, throttled, nothing on stdout (issue 14)."""

from __future__ import annotations

import io
import json

from rich.console import Console
from typer.testing import CliRunner

from sqnn_cli import report
from sqnn_cli.cli import app

from .conftest import TINY_MODEL

runner = CliRunner()


def test_training_in_a_log_prints_epoch_lines_on_stderr_only(tmp_path, make_table, monkeypatch):
    monkeypatch.setattr(report, "PROGRESS_SECONDS", 0.0)
    path = tmp_path / "t.csv"
    make_table(200).to_csv(path, index=False)
    result = runner.invoke(app, ["train", str(path), "-s", "group", "--out", str(tmp_path / "m"), "--json", *TINY_MODEL])
    assert result.exit_code == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("training: epoch")]
    assert [line.split(",")[0] for line in lines] == ["training: epoch 1/3", "training: epoch 2/3", "training: epoch 3/3"]
    assert all("loss" in line and line.endswith(" s)") for line in lines)
    json.loads(result.stdout)  # stdout holds the JSON object alone


def test_plain_progress_is_throttled_and_always_shows_the_end(monkeypatch):
    clock = iter([0.0, 1.0, 6.0, 7.0, 8.0, 20.0])
    monkeypatch.setattr(report.time, "monotonic", lambda: next(clock))
    console = Console(file=io.StringIO(), force_terminal=False, width=100)
    with report.task_progress(console) as progress:  # started at 0
        progress("trees", 1, 4)  # 1 s: too soon
        progress("trees", 2, 4)  # 6 s: printed
        progress("trees", 3, 4)  # 7 s: too soon
        progress("trees", 4, 4)  # 8 s: the end, printed because something was
    assert console.file.getvalue().splitlines() == ["trees: 2/4 (6 s)", "trees: 4/4 (8 s)"]


def test_short_work_prints_no_progress(monkeypatch):
    clock = iter([0.0, 0.5, 1.0])
    monkeypatch.setattr(report.time, "monotonic", lambda: next(clock))
    console = Console(file=io.StringIO(), force_terminal=False, width=100)
    with report.task_progress(console) as progress:
        progress("runs", 1, 2)
        progress("runs", 2, 2)
    assert console.file.getvalue() == ""
