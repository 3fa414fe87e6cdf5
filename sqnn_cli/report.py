"""All rendering: rich tables and notes for people (stderr), JSON for machines (stdout)."""

from __future__ import annotations

import json
import math
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .gates import GateOutcome

if TYPE_CHECKING:
    from .metrics import EvaluationResult
    from .preprocess import EncodingReport

__all__ = [
    "to_json",
    "error",
    "warn",
    "info",
    "encoding_notes",
    "evaluation_notes",
    "render_evaluation",
    "render_gates",
    "training_progress",
]

_SUMMARY_ROWS = (
    ("auc", "AUC"),
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("gpa", "GPA (group pairwise accuracy gap)"),
    ("audc", "AUDC (area under discrimination curve)"),
    ("dp_difference", "demographic parity difference"),
    ("eo_difference", "equalized odds difference"),
    ("d_gpa", "dGPA = (1 - AUC) + GPA"),
    ("d_audc", "dAUDC = (1 - AUC) + AUDC"),
)


def _plain(value: Any) -> Any:
    """JSON-ready copy: NaN and infinities become null, numpy scalars become Python."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "item") and hasattr(value, "dtype"):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def to_json(data: Any) -> str:
    return json.dumps(_plain(data), indent=2, allow_nan=False)


def error(console: Console, message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(console: Console, message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def info(console: Console, message: str) -> None:
    console.print(escape(message), soft_wrap=True)


def encoding_notes(encoding: EncodingReport) -> list[str]:
    notes = []
    for column, count in encoding.unseen.items():
        notes.append(f"{count} row(s) have a value of '{column}' not seen in training (encoded as no category)")
    for column, count in encoding.imputed.items():
        notes.append(f"{count} missing value(s) in '{column}' were replaced by the training median")
    return notes


def evaluation_notes(result: EvaluationResult, min_group_size: int) -> list[str]:
    if not result.small_groups:
        return []
    names = ", ".join(f"'{g}'" for g in result.small_groups)
    return [
        f"group(s) {names} have fewer than {min_group_size} rows: listed, but left out of "
        "GPA, AUDC, DP and EO (change with --min-group-size)"
    ]


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def render_evaluation(console: Console, result: EvaluationResult, *, title: str) -> None:
    summary = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    for key, label in _SUMMARY_ROWS:
        summary.add_row(label, _number(getattr(result, key)))
    summary.add_row("rows", str(result.n))
    summary.add_row("threshold", f"{result.threshold:g}")
    console.print(summary)

    groups = Table(title="per group", show_header=True, header_style="bold", title_justify="left")
    for name in ("group", "n", "base rate", "selection rate", "TPR", "FPR", "AUC"):
        groups.add_column(name, justify="left" if name == "group" else "right")
    small = set(result.small_groups)
    for group in result.groups:
        label = escape(group.group) + (" [dim](small)[/]" if group.group in small else "")
        groups.add_row(
            label,
            str(group.n),
            _number(group.base_rate, 3),
            _number(group.selection_rate, 3),
            _number(group.tpr, 3),
            _number(group.fpr, 3),
            _number(group.auc, 3),
        )
    console.print(groups)


def render_gates(console: Console, outcomes: Sequence[GateOutcome]) -> None:
    for outcome in outcomes:
        style = "green" if outcome.passed else "bold red"
        console.print(f"[{style}]gate {outcome.gate.option}:[/] {escape(outcome.message)}", soft_wrap=True)


@contextmanager
def training_progress(console: Console, epochs: int) -> Iterator[Any]:
    """Yields an epoch callback; draws a progress bar only when stderr is a terminal."""
    if not console.is_terminal:
        yield None
        return
    progress = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]}  BCE {task.fields[bce]}  MI {task.fields[mi]} bits"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("train", total=epochs, loss="-", bce="-", mi="-")

    def on_epoch(record: dict[str, float]) -> None:
        progress.update(
            task,
            completed=record["epoch"],
            loss=f"{record['loss']:.4f}",
            bce=f"{record['bce']:.4f}",
            mi=f"{record['mi']:.4f}",
        )

    with progress:
        yield on_epoch
