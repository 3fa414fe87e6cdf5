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
from .jsonable import plain

if TYPE_CHECKING:
    from .metrics import EvaluationResult
    from .pipeline import Evaluation
    from .preprocess import EncodingReport

__all__ = [
    "to_json",
    "error",
    "warn",
    "info",
    "encoding_notes",
    "evaluation_notes",
    "evaluation_warnings",
    "threshold_note",
    "render_evaluation",
    "render_gates",
    "training_progress",
    "task_progress",
    "audit_notes",
    "render_audit",
    "intervention_summary",
    "render_interventions",
    "plot_interventions",
    "render_sweep",
    "plot_tradeoff",
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


def to_json(data: Any) -> str:
    return json.dumps(plain(data), indent=2, allow_nan=False)


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
    for column, count in encoding.clipped.items():
        notes.append(
            f"{count} value(s) of '{column}' lie over a million standard deviations from the training mean "
            "and were clipped there"
        )
    return notes


def evaluation_notes(result: EvaluationResult, min_group_size: int) -> list[str]:
    notes = []
    if result.degenerate:
        label = "positive" if result.positive_rate > 0 else "negative"
        notes.append(
            f"DEGENERATE MODEL: every one of the {result.n} rows is predicted {label} at threshold "
            f"{result.threshold:.4g}; its DP and EO differences are 0 only because it does not discriminate at all, "
            "and a fairness gate fails on it unless --allow-degenerate"
        )
    if result.small_groups:
        names = ", ".join(f"'{g}'" for g in result.small_groups)
        notes.append(
            f"group(s) {names} have fewer than {min_group_size} rows: listed, but left out of "
            "GPA, AUDC, DP and EO (change with --min-group-size)"
        )
    return notes


def evaluation_warnings(evaluation: Evaluation, min_group_size: int) -> list[str]:
    """Everything a user must hear about an evaluation besides its numbers."""
    notes = []
    if evaluation.rows_dropped:
        notes.append(f"{evaluation.rows_dropped} row(s) with a missing target or sensitive value were left out")
    if evaluation.unseen_groups:
        names = ", ".join(f"'{g}'" for g in evaluation.unseen_groups)
        notes.append(f"group(s) {names} did not occur in training; they are evaluated like the others")
    return notes + encoding_notes(evaluation.encoding) + evaluation_notes(evaluation.result, min_group_size)


def threshold_note(evaluation: Evaluation, *, rule: str) -> str:
    """Which decision threshold is in force, and where it came from."""
    where = f"chosen in training: {rule}" if evaluation.threshold_source == "training" else "given with --threshold"
    return f"decision threshold {evaluation.result.threshold:.4g} ({where})"


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
    summary.add_row("threshold", f"{result.threshold:.4g}")
    summary.add_row("predicted positive", _number(result.positive_rate, 3) + (" [bold red](degenerate)[/]" if result.degenerate else ""))
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


@contextmanager
def task_progress(console: Console) -> Iterator[Any]:
    """Yields a ``(label, done, total)`` callback drawing one bar per label on a terminal."""
    if not console.is_terminal:
        yield None
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total)
        progress.update(tasks[label], completed=done)

    with progress:
        yield update


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


# -- representation audit -----------------------------------------------------------------
_AUDIT_ROWS = (
    ("rf_accuracy", "RF accuracy predicting S"),
    ("majority_share", "majority-group share"),
    ("adrg", "ADRG = |accuracy - majority share|"),
    ("balanced_accuracy", "RF balanced accuracy for S"),
    ("leakage_auc", "leakage AUC for S"),
    ("y_accuracy", "RF accuracy predicting y"),
    ("y_auc", "RF AUC for y"),
)
# A gap this large between what theta and a sampled code reveal is worth saying out loud.
_THETA_GAP = 0.02


def _estimate(estimate: Any) -> str:
    text = f"{estimate.bits:.4f} bits"
    if estimate.stderr is not None:
        text += f" ± {estimate.stderr:.4f}"
    return f"{text} ({estimate.estimator}{f', {estimate.samples} samples' if estimate.samples else ''})"


def audit_notes(audit: Any) -> list[str]:
    code, theta = audit.code, audit.theta
    if theta.leakage_auc - code.leakage_auc > _THETA_GAP:
        return [
            f"the firing probabilities reveal S better than a sampled code (leakage AUC {theta.leakage_auc:.3f} "
            f"vs {code.leakage_auc:.3f}): anyone holding the encoder can recover S beyond what a released code shows"
        ]
    return []


def render_audit(console: Console, audit: Any, *, title: str) -> None:
    summary = Table(title=title, header_style="bold", title_justify="left")
    summary.add_column("")
    summary.add_column(f"sampled code ({audit.draws} draw{'s' if audit.draws > 1 else ''}/row)", justify="right")
    summary.add_column("firing probabilities θ", justify="right")
    for key, label in _AUDIT_ROWS:
        summary.add_row(label, _number(getattr(audit.code, key)), _number(getattr(audit.theta, key)))
    console.print(summary)
    console.print(
        f"{audit.n} rows, {len(audit.groups)} groups, forests of {audit.trees} trees on a "
        f"{1 - audit.test_size:.0%}/{audit.test_size:.0%} split stratified on S"
    )
    console.print(f"joint I(T;S): {escape(_estimate(audit.mi_joint))}")
    console.print(f"plug-in I(T;S) from one draw per row: {escape(_estimate(audit.mi_plugin))}")
    console.print(f"distinct codes in one draw per row: {audit.distinct_codes}")

    neurons = Table(title="per neuron, by bias flow (bits)", header_style="bold", title_justify="left")
    for name in ("neuron", "H(T_i)", "I(T_i;S) bias", "I(T_i;y) accuracy", "I(T_i;S|T_-i) conditional"):
        neurons.add_column(name, justify="right")
    for flow in sorted(audit.neurons, key=lambda n: -n.bias_flow):
        neurons.add_row(
            str(flow.neuron), _number(flow.entropy), _number(flow.bias_flow), _number(flow.accuracy_flow), _number(flow.conditional_flow)
        )
    console.print(neurons)


def intervention_summary(points: Sequence[Any]) -> dict[str, list[dict[str, float]]]:
    """Per strategy and k, the metrics after removal (random: mean over repeats)."""
    import statistics

    grouped: dict[str, dict[int, list[Any]]] = {}
    for point in points:
        grouped.setdefault(point.strategy, {}).setdefault(point.k, []).append(point)
    summary: dict[str, list[dict[str, float]]] = {}
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


def render_interventions(console: Console, points: Sequence[Any], *, mode: str) -> None:
    summary = intervention_summary(points)
    strategies = list(summary)
    table = Table(
        title=f"interventions ({mode}): DP difference / AUC after removing the top-k neurons",
        header_style="bold",
        title_justify="left",
    )
    table.add_column("k", justify="right")
    for strategy in strategies:
        table.add_column(strategy + (" (mean)" if strategy == "random" else ""), justify="right")
    for index, row in enumerate(summary[strategies[0]]):
        cells = [str(row["k"])]
        for strategy in strategies:
            point = summary[strategy][index]
            cells.append(f"{_number(point['dp_difference'], 3)} / {_number(point['auc'], 3)}")
        table.add_row(*cells)
    console.print(table)


def plot_interventions(points: Sequence[Any], path: Path, *, title: str) -> Path:
    """PNG of bias (DP difference, GPA) against AUC, one line per ranking strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = intervention_summary(points)
    figure, axes = plt.subplots(2, 2, figsize=(11, 8.5), constrained_layout=True)
    panels = (
        (axes[0, 0], "auc", "dp_difference", "AUC", "DP difference (lower is fairer)"),
        (axes[0, 1], "auc", "gpa", "AUC", "GPA (lower is fairer)"),
        (axes[1, 0], "k", "dp_difference", "neurons removed (k)", "DP difference"),
        (axes[1, 1], "k", "auc", "neurons removed (k)", "AUC"),
    )
    for axis, x_key, y_key, x_label, y_label in panels:
        for strategy, rows in summary.items():
            style = "--" if strategy == "random" else "-"
            name = strategy + (" (mean)" if strategy == "random" else "")
            axis.plot([r[x_key] for r in rows], [r[y_key] for r in rows], style, marker="o", markersize=3, label=name)
        if x_key == "auc":
            first = next(iter(summary.values()))[0]
            axis.annotate("k=0", (first["auc"], first[y_key]), textcoords="offset points", xytext=(4, 4), fontsize=8)
        axis.set_xlabel(x_label)
        axis.set_ylabel(y_label)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


# -- gamma sweep --------------------------------------------------------------------------
def _mean_std(row: dict[str, Any], metric: str) -> str:
    mean, std = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "n/a"
    return f"{mean:.3f}" + (f"±{std:.3f}" if std is not None else "")


def render_sweep(console: Console, summary: Any, *, title: str) -> None:
    metrics = ["auc", "gpa", "audc", "dp_difference", "d_gpa", "d_audc"]
    if any("adrg_mean" in row for row in summary.rows):
        metrics += ["adrg", "leakage_auc", "mi_joint"]
    headers = {"auc": "AUC", "gpa": "GPA", "audc": "AUDC", "dp_difference": "DP", "d_gpa": "dGPA", "d_audc": "dAUDC",
               "adrg": "ADRG", "leakage_auc": "leak AUC", "mi_joint": "I(T;S)"}  # fmt: skip
    table = Table(title=title, caption="mean±std over folds; Pareto: non-dominated in AUC and GPA / AUDC; "
                  "criterion: largest AUC + (1-GPA) + (1-AUDC), the paper's model selection",
                  header_style="bold", title_justify="left")  # fmt: skip
    table.add_column("gamma", justify="right", no_wrap=True)
    for metric in metrics:
        table.add_column(headers[metric], justify="right", no_wrap=True)
    table.add_column("Pareto", no_wrap=True)
    table.add_column("best", no_wrap=True)
    for row in summary.rows:
        pareto = "+".join(name for name in ("GPA", "AUDC") if row.get(f"pareto_{name.lower()}"))
        best = ", ".join(
            label
            for label, gamma in (
                ("dGPA", summary.best_by_d_gpa),
                ("dAUDC", summary.best_by_d_audc),
                ("criterion", summary.best_by_criterion),
            )
            if row["gamma"] == gamma
        )
        best = f"[bold green]{best}[/]"
        if row.get("degenerate_folds"):
            best = f"[bold red]one class in {row['degenerate_folds']} fold(s)[/]"
        table.add_row(f"{row['gamma']:g}", *[_mean_std(row, m) for m in metrics], pareto, best)
    # Logs and pipes get a table wide enough to read; a terminal keeps its own width.
    wide = console if console.is_terminal else Console(file=console.file, width=max(console.width, 130))
    wide.print(table)
    names = {"one_minus_gpa": "1-GPA", "one_minus_audc": "1-AUDC", "auc": "AUC"}
    for kind in ("pearson", "spearman"):
        parts = [
            f"{names[k]} {v:+.3f}" if v is not None else f"{names[k]} n/a" for k, v in summary.correlations[kind].items()
        ]
        console.print(f"{kind.capitalize()} correlation of gamma with " + ", ".join(parts))
    console.print(f"{summary.runs_finished} of {summary.runs_planned} runs finished; mean ± std over folds")
    for note in summary.notes:
        warn(console, note)


def plot_tradeoff(summary: Any, path: Path, *, title: str) -> Path:
    """AUC against 1-GPA and against 1-AUDC, points coloured by gamma, the Pareto front
    drawn (the paper's Figures 2 and 3)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary.rows if r.get("auc_mean") is not None]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    gammas = [r["gamma"] for r in rows]
    scatter = None
    for axis, metric, label in ((axes[0], "gpa", "1 - GPA"), (axes[1], "audc", "1 - AUDC")):
        points = [(1 - r[f"{metric}_mean"], r["auc_mean"], r.get(f"{metric}_std") or 0.0, r.get("auc_std") or 0.0, r["gamma"], r.get(f"pareto_{metric}")) for r in rows if r.get(f"{metric}_mean") is not None]
        if not points:
            axis.text(0.5, 0.5, f"no gamma has an estimable {label[4:]}", ha="center", va="center", transform=axis.transAxes)
            continue
        xs, ys, xerr, yerr, gs, pareto = zip(*points)
        axis.errorbar(xs, ys, xerr=xerr, yerr=yerr, fmt="none", ecolor="0.75", elinewidth=0.8, zorder=1)
        scatter = axis.scatter(xs, ys, c=gs, cmap="viridis", vmin=min(gammas), vmax=max(gammas), s=40, zorder=2)
        front = sorted((x, y) for x, y, flag in zip(xs, ys, pareto) if flag)
        if front:
            axis.plot(*zip(*front), "-", color="crimson", linewidth=1.2, label="Pareto front", zorder=3)
            axis.legend(loc="lower left", fontsize=8)
        axis.set_xlabel(f"{label} (higher is fairer)")
        axis.set_ylabel("AUC")
        axis.grid(alpha=0.3)
    if scatter is not None:  # every GPA and AUDC undefined (e.g. every group below --min-group-size)
        figure.colorbar(scatter, ax=axes, label="gamma")
    figure.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
