"""All rendering: rich tables and notes for people (stderr), JSON for machines (stdout)."""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from .gates import GateOutcome
from .jsonable import plain

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.collections import PathCollection
    from matplotlib.figure import Figure

    from .audit import ForestAudit, InterventionPoint, RepresentationAudit
    from .constraints import GammaChoice
    from .information import InformationEstimate
    from .metrics import EvaluationResult
    from .pipeline import Evaluation
    from .preprocess import EncodingReport
    from .sweep import SweepSummary
    from .uncertainty import BootstrapIntervals

__all__ = [
    "keep_option_names_whole",
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
    "render_interventions",
    "plot_interventions",
    "render_sweep",
    "tradeoff_figure",
    "plot_tradeoff",
    "number",
    "metric_labels",
    "audit_figures",
    "audit_sentences",
]

# How often a log (no terminal) gets a progress line.
PROGRESS_SECONDS = 5.0

_SUMMARY_ROWS = (
    ("auc", "AUC"),
    ("accuracy", "accuracy"),
    ("balanced_accuracy", "balanced accuracy"),
    ("gpa", "GPA (group pairwise accuracy gap)"),
    ("audc", "AUDC (area under discrimination curve)"),
    ("dp_difference", "demographic parity difference"),
    ("eo_difference", "equalized odds difference"),
    ("dp_ratio", "demographic parity ratio (4/5 rule: >= 0.8)"),
    ("eo_ratio", "equalized odds ratio"),
    ("d_gpa", "dGPA = (1 - AUC) + GPA"),
    ("d_audc", "dAUDC = (1 - AUC) + AUDC"),
)


def keep_option_names_whole() -> None:
    """typer lets rich squeeze the option names of ``--help`` like the help text beside
    them, so at 80 columns ``--sensitive-as-feature`` became ``--sensitive-as-feat…``.
    Its options tables are made with names that never wrap: the type and help columns
    (always the last two) wrap instead. Commands tables have only those two."""
    import typer.rich_utils

    current = getattr(typer.rich_utils, "Table", None)
    # Another typer may build its tables otherwise: then its own layout stands.
    if current is None or getattr(current, "keeps_names_whole", False):
        return

    class OptionsTable(Table):
        keeps_names_whole = True

        def add_row(self, *renderables: Any, **kwargs: Any) -> None:
            super().add_row(*renderables, **kwargs)
            for column in self.columns[:-2]:
                column.no_wrap = True

    typer.rich_utils.Table = OptionsTable


def to_json(data: Any) -> str:
    return json.dumps(plain(data), indent=2, allow_nan=False)


def error(console: Console, message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}", soft_wrap=True)


def warn(console: Console, message: str) -> None:
    console.print(f"[yellow]warning:[/] {escape(message)}", soft_wrap=True)


def info(console: Console, message: str) -> None:
    console.print(escape(message), soft_wrap=True)


def encoding_notes(encoding: EncodingReport) -> list[str]:
    return [
        *(
            f"{count} row(s) have a value of '{column}' not seen in training (encoded as no category)"
            for column, count in encoding.unseen.items()
        ),
        *(
            f"{count} missing value(s) in '{column}' were replaced by the training median"
            for column, count in encoding.imputed.items()
        ),
        *(
            f"{count} value(s) of '{column}' lie over a million standard deviations from the training mean "
            "and were clipped there"
            for column, count in encoding.clipped.items()
        ),
    ]


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
    if evaluation.result.zero_weight_groups:
        names = ", ".join(f"'{g}'" for g in evaluation.result.zero_weight_groups)
        notes.append(f"group(s) {names} weigh 0 in every row: listed, but left out of GPA, AUDC, DP and EO")
    return notes + encoding_notes(evaluation.encoding) + evaluation_notes(evaluation.result, min_group_size)


def weight_notes(column: str | None) -> list[str]:
    """Which sample weights every figure weighs the rows by, if any."""
    return [] if column is None else [f"every figure weighs the rows by the sample weights in column '{column}'"]


def threshold_note(evaluation: Evaluation, *, rule: str) -> str:
    """Which decision threshold is in force, and where it came from."""
    where = f"chosen in training: {rule}" if evaluation.threshold_source == "training" else "given with --threshold"
    return f"decision threshold {evaluation.result.threshold:.4g} ({where})"


def _number(value: float | None, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def _interval(interval: tuple[float, float] | None, digits: int) -> str:
    return "n/a" if interval is None else f"{interval[0]:.{digits}f}–{interval[1]:.{digits}f}"


def _undefined_notes(intervals: BootstrapIntervals) -> list[str]:
    """Where a metric was undefined in some resamples, so its interval rests on fewer."""
    counts = list(intervals.undefined.items())
    counts += [(f"{name} of '{group}'", n) for group, named in intervals.groups_undefined.items() for name, n in named.items()]
    return [
        f"{name}: undefined in {n} of {intervals.n_resamples} resamples; its interval comes from the others"
        if n < intervals.n_resamples else f"{name}: undefined in every resample, so no interval"
        for name, n in counts
    ]


# Per-group intervals, most telling first (DP and EO are made of the selection rate, TPR and
# FPR): a narrow terminal drops them from the end.
_GROUP_INTERVALS = (
    ("selection_rate", "selection\nrate"), ("tpr", "TPR"), ("fpr", "FPR"), ("ppv", "PPV"), ("auc", "AUC"),
    ("fnr", "FNR"), ("base_rate", "base\nrate"),
)  # fmt: skip


def _group_interval_table(intervals: BootstrapIntervals, columns: Sequence[tuple[str, str]]) -> Table:
    title = f"per group, {intervals.confidence_level * 100:g}% intervals"
    table = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    table.add_column("group")
    for _, header in columns:
        # whole or not at all: the group names wrap instead
        table.add_column(header, justify="right", no_wrap=True)
    for group, shown in intervals.groups.items():
        table.add_row(escape(group), *(_interval(shown.get(name), 3) for name, _ in columns))
    return table


def _render_group_intervals(console: Console, intervals: BootstrapIntervals) -> None:
    """The widest table of per-group intervals that fits, and what it left out."""
    for count in range(len(_GROUP_INTERVALS), 0, -1):
        table = _group_interval_table(intervals, _GROUP_INTERVALS[:count])
        if Measurement.get(console, console.options.update_width(10_000), table).minimum <= console.width:
            console.print(table)
            break
    else:
        count = 0
    left_out = [header.replace("\n", " ") for _, header in _GROUP_INTERVALS[count:]]
    if left_out:
        console.print(f"per-group intervals left out, too narrow: {', '.join(left_out)} (see --json, or widen the terminal)")


def render_evaluation(
    console: Console, result: EvaluationResult, *, title: str, intervals: BootstrapIntervals | None = None
) -> None:
    """The metrics and the per-group table; with ``intervals``, each metric's confidence
    interval beside it and a table of the per-group ones."""
    summary = Table(title=title, show_header=True, header_style="bold", title_justify="left")
    summary.add_column("metric")
    summary.add_column("value", justify="right")
    if intervals is not None:
        summary.add_column(f"{intervals.confidence_level * 100:g}% interval", justify="right")
    for key, label in _SUMMARY_ROWS:
        shown = [] if intervals is None else [_interval(intervals.metrics.get(key), 4)]
        summary.add_row(label, _number(getattr(result, key)), *shown)
    summary.add_row("rows", str(result.n))
    summary.add_row("threshold", f"{result.threshold:.4g}")
    summary.add_row("predicted positive", _number(result.positive_rate, 3) + (" [bold red](degenerate)[/]" if result.degenerate else ""))
    console.print(summary)

    groups = Table(title="per group", show_header=True, header_style="bold", title_justify="left")
    # FNR (1 - TPR) is in the JSON; at 80 columns the table has room for the rest only.
    weighted = bool(result.groups) and result.groups[0].weight is not None
    for name in ("group", "n\nweight" if weighted else "n", "base\nrate", "selection\nrate", "TPR", "FPR", "PPV", "AUC"):
        groups.add_column(name, justify="left" if name == "group" else "right")
    small = set(result.small_groups)
    for group in result.groups:
        label = escape(group.group) + (" [dim](small)[/]" if group.group in small else "")
        rates = (group.base_rate, group.selection_rate, group.tpr, group.fpr, group.ppv, group.auc)
        size = f"{group.n}\n{group.weight:.4g}" if weighted else str(group.n)
        groups.add_row(label, size, *(_number(rate, 3) for rate in rates))
    console.print(groups)
    if intervals is None:
        return
    _render_group_intervals(console, intervals)
    console.print(
        f"intervals: {intervals.confidence_level * 100:g}% percentile bootstrap, {intervals.n_resamples} resamples "
        f"drawn within each group (seed {intervals.seed})"
    )
    for note in _undefined_notes(intervals):
        console.print(escape(note))


@contextmanager
def task_progress(console: Console) -> Iterator[Any]:
    """Yields a ``(label, done, total)`` callback: one bar per label on a terminal, plain
    lines in a log (see _PlainProgress)."""
    if not console.is_terminal:
        plain = _PlainProgress(console)
        yield lambda label, done, total: plain.line(f"{label}: {done}/{total}", final=done >= total)
        return
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
    tasks: dict[str, Any] = {}

    def update(label: str, done: int, total: int) -> None:
        if label not in tasks:
            tasks[label] = progress.add_task(label, total=total)
        progress.update(tasks[label], completed=done)

    with progress:
        yield update


class _PlainProgress:
    """Progress for a log (a CI step, a file): a plain line on stderr at most every
    PROGRESS_SECONDS, with the time elapsed. Work shorter than that prints nothing; work
    that printed anything also prints its last step, so the log shows it ended."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = self.last = time.monotonic()
        self.printed = False

    def line(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if now - self.last >= PROGRESS_SECONDS or (final and self.printed):
            self.console.print(f"{escape(text)} ({now - self.started:.0f} s)", soft_wrap=True, highlight=False)
            self.last, self.printed = now, True


def render_gates(console: Console, outcomes: Sequence[GateOutcome]) -> None:
    for outcome in outcomes:
        style = "green" if outcome.passed else "bold red"
        console.print(f"[{style}]gate {outcome.gate.option}:[/] {escape(outcome.message)}", soft_wrap=True)


# How each method's epoch figures (estimator.history_) are shown; the rest are left to --json.
_EPOCH_FIGURES = (
    ("loss", "loss", ""), ("bce", "BCE", ""), ("mi", "MI", " bits"), ("adversary_accuracy", "adversary accuracy", ""),
    ("mmd", "MMD²", ""),
)  # fmt: skip


def epoch_figures(record: dict[str, float]) -> str:
    """An epoch's figures in words: the loss, the BCE and the method's fairness term."""
    return ", ".join(f"{label} {record[key]:.4f}{unit}" for key, label, unit in _EPOCH_FIGURES if key in record)


@contextmanager
def training_progress(console: Console, epochs: int) -> Iterator[Any]:
    """Yields an epoch callback: a progress bar on a terminal, plain lines in a log."""
    if not console.is_terminal:
        plain = _PlainProgress(console)

        def log_epoch(record: dict[str, float]) -> None:
            plain.line(f"training: epoch {record['epoch']}/{epochs}, {epoch_figures(record)}", final=record["epoch"] >= epochs)

        yield log_epoch
        return
    progress = Progress(
        TextColumn("training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[figures]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )
    task = progress.add_task("train", total=epochs, figures="")

    def on_epoch(record: dict[str, float]) -> None:
        progress.update(task, completed=record["epoch"], figures=epoch_figures(record))

    with progress:
        yield on_epoch


# -- representation audit -----------------------------------------------------------------
# Leakage first: the AUC and the balanced accuracy sit at chance whatever the group sizes.
# ADRG, the paper's, is |accuracy - majority share|: it also counts a forest that does
# worse than the majority guess as leakage, hence the signed gain beside it.
_AUDIT_ROWS = (
    ("leakage_auc", "leakage AUC for S (± std. error)"),
    ("balanced_accuracy", "RF balanced accuracy for S"),
    ("rf_accuracy", "RF accuracy predicting S"),
    ("majority_share", "majority-group share"),
    ("accuracy_gain", "gain = accuracy - majority share"),
    ("adrg", "ADRG = |gain| (the paper's)"),
    ("y_accuracy", "RF accuracy predicting y"),
    ("y_auc", "RF AUC for y"),
)


def _estimate(estimate: InformationEstimate) -> str:
    text = f"{estimate.bits:.4f} bits"
    if estimate.stderr is not None:
        text += f" ± {estimate.stderr:.4f}"
    return f"{text} ({estimate.estimator}{f', {estimate.samples} samples' if estimate.samples else ''})"


def audit_notes(audit: RepresentationAudit) -> list[str]:
    # audit is loaded already (the audit comes from it); see _intervention_curves.
    from .audit import NOISE_STDERRS

    if not audit.theta_reveals_more:
        return []
    code, theta = audit.code, audit.theta
    noise = ""
    if audit.theta_gap_stderr is not None:
        noise = f", beyond {NOISE_STDERRS:g} standard errors ({NOISE_STDERRS * audit.theta_gap_stderr:.3f})"
    return [
        f"the firing probabilities reveal S better than a sampled code (leakage AUC {theta.leakage_auc:.3f} "
        f"vs {code.leakage_auc:.3f}: a gap of {audit.theta_gap:.3f}{noise}): anyone holding the encoder "
        "can recover S beyond what a released code shows"
    ]


def _leakage_cell(view: ForestAudit) -> str:
    if view.leakage_auc_stderr is None:
        return _number(view.leakage_auc)
    return f"{_number(view.leakage_auc)} ± {_number(view.leakage_auc_stderr)}"


def _below_chance_comments(audit: RepresentationAudit) -> list[str]:
    """What a leakage AUC under 0.5 means: no information about S found, never less
    than none."""
    from .audit import NOISE_STDERRS

    comments = []
    for view in (audit.code, audit.theta):
        reading = view.below_chance()
        if reading is None:
            continue
        auc = f"{view.audited}: leakage AUC {view.leakage_auc:.4f} is below 0.5"
        if reading == "within noise":
            comments.append(
                f"{auc}, within {NOISE_STDERRS:g} standard errors of chance: noise, not anti-leakage; "
                "no information about S detected"
            )
        else:
            comments.append(
                f"{auc} by more than {NOISE_STDERRS:g} standard errors: the forest ranks the test rows' groups backwards, as an "
                "overfitted forest on a small split can; not anti-leakage, no information about S detected "
                "(another --seed draws another split)"
            )
    return comments


def _plugin_line(audit: RepresentationAudit) -> str:
    from .audit import SPARSE_CELL_ROWS, SPARSE_CELL_SHARE

    line = f"plug-in I(T;S) from one draw per row: {_estimate(audit.mi_plugin)}"
    if audit.plugin_caveat is not None:
        return f"{line}, {audit.plugin_caveat}"
    if audit.plugin_sparse_cells is None:
        return line
    return (
        f"{line}, {audit.plugin_sparse_cells:.0%} of the (code, group) cells expect fewer than {SPARSE_CELL_ROWS:g} "
        f"rows (the Miller-Madow correction holds to {SPARSE_CELL_SHARE:.0%})"
    )


def _audit_summary(audit: RepresentationAudit, *, title: str) -> Table:
    chance = f"1/{len(audit.groups)}"
    summary = Table(
        title=title, header_style="bold", title_justify="left", caption_justify="left",
        caption=f"At chance the leakage AUC is 0.5 and the balanced accuracy {chance}. ADRG is |gain|, so a "
        "forest worse than the majority guess (gain < 0) counts there as leakage too.",
    )  # fmt: skip
    summary.add_column("")
    summary.add_column(f"sampled code ({audit.draws} draw{'s' if audit.draws > 1 else ''}/row)", justify="right")
    summary.add_column("firing probabilities θ", justify="right")
    for key, label in _AUDIT_ROWS:
        if key == "leakage_auc":
            summary.add_row(label, _leakage_cell(audit.code), _leakage_cell(audit.theta))
        else:
            summary.add_row(label, _number(getattr(audit.code, key)), _number(getattr(audit.theta, key)))
    return summary


def render_audit(console: Console, audit: RepresentationAudit, *, title: str) -> None:
    from .audit import BOOTSTRAP_RESAMPLES

    console.print(_audit_summary(audit, title=title))
    console.print(
        f"{audit.n} rows, {len(audit.groups)} groups, forests of {audit.trees} trees on a "
        f"{1 - audit.test_size:.0%}/{audit.test_size:.0%} split stratified on S; standard errors from "
        f"{BOOTSTRAP_RESAMPLES} resamples of the test rows"
    )
    for comment in _below_chance_comments(audit):
        console.print(escape(comment))
    console.print(f"joint I(T;S): {escape(_estimate(audit.mi_joint))}")
    console.print(escape(_plugin_line(audit)))
    console.print(f"distinct codes in one draw per row: {audit.distinct_codes}")

    neurons = Table(title="per neuron, by bias flow (bits)", header_style="bold", title_justify="left")
    for name in ("neuron", "H(T_i)", "I(T_i;S) bias", "I(T_i;y) accuracy", "I(T_i;S|T_-i) conditional"):
        neurons.add_column(name, justify="right")
    for flow in sorted(audit.neurons, key=lambda n: -n.bias_flow):
        neurons.add_row(
            str(flow.neuron), _number(flow.entropy), _number(flow.bias_flow), _number(flow.accuracy_flow), _number(flow.conditional_flow)
        )
    console.print(neurons)


def _intervention_curves(points: Sequence[InterventionPoint]) -> dict[str, list[dict[str, Any]]]:
    # audit is loaded already (the points come from it); importing it at the top would
    # load torch for every command that renders anything.
    from .audit import summarise_interventions

    return summarise_interventions(points)


def render_interventions(console: Console, points: Sequence[InterventionPoint], *, mode: str) -> None:
    summary = _intervention_curves(points)
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


def plot_interventions(points: Sequence[InterventionPoint], path: Path, *, title: str) -> Path:
    """PNG of bias (DP difference, GPA) against AUC, one line per ranking strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = _intervention_curves(points)
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
_SWEEP_HEADERS = {"auc": "AUC", "gpa": "GPA", "audc": "AUDC", "dp_difference": "DP", "d_gpa": "dGPA", "d_audc": "dAUDC",
                  "adrg": "ADRG", "leakage_auc": "leak AUC", "mi_joint": "I(T;S)"}  # fmt: skip
# Logs and pipes have no width of their own: give them the full table rather than rich's 80.
_LOG_WIDTH = 130
# Narrow layouts, tried in order until one fits: (std beside the mean, std stacked under it,
# metrics left out). dGPA and dAUDC go first: they are (1-AUC)+GPA and (1-AUC)+AUDC.
_SWEEP_LAYOUTS = (
    ("inline", ()),
    ("stacked", ()),
    ("stacked", ("d_gpa", "d_audc")),
    ("mean", ("d_gpa", "d_audc")),
    ("mean", ("d_gpa", "d_audc", "mi_joint")),
    ("mean", ("d_gpa", "d_audc", "mi_joint", "adrg")),
)


def _mean_std(row: dict[str, Any], metric: str, std: str = "inline") -> str:
    mean, spread = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "n/a"
    if spread is None or std == "mean":
        return f"{mean:.3f}"
    return f"{mean:.3f}" + ("\n" if std == "stacked" else "") + f"±{spread:.3f}"


def _sweep_table(summary: SweepSummary, title: str, metrics: list[str], std: str) -> Table:
    one_fold = summary.folds <= 1
    spread = {"inline": "mean±std over folds", "stacked": "mean over folds, ±std under it", "mean": "mean over folds (std left out)"}[std]
    caption = (
        ("one fold: no std" if one_fold else spread) + "; Pareto: non-dominated in AUC and GPA / AUDC; "
        "criterion: largest AUC + (1-GPA) + (1-AUDC), the paper's model selection"
    )
    narrow = std != "inline"
    table = Table(title=title, caption=caption, header_style="bold", title_justify="left", caption_justify="left")
    table.add_column("gamma", justify="right", no_wrap=True)
    for metric in metrics:
        header = _SWEEP_HEADERS[metric].replace(" ", "\n") if narrow else _SWEEP_HEADERS[metric]
        table.add_column(header, justify="right", no_wrap=True)
    table.add_column("Pareto", no_wrap=True)
    table.add_column("best")
    joiner = "\n" if narrow else ", "
    for row in summary.rows:
        pareto = joiner.join(name for name in ("GPA", "AUDC") if row.get(f"pareto_{name.lower()}"))
        best = joiner.join(
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
        table.add_row(f"{row['gamma']:g}", *[_mean_std(row, m, std) for m in metrics], pareto, best)
    return table


def render_sweep(console: Console, summary: SweepSummary, *, title: str) -> None:
    metrics = ["auc", "gpa", "audc", "dp_difference", "d_gpa", "d_audc"]
    if any("adrg_mean" in row for row in summary.rows):
        metrics += ["adrg", "leakage_auc", "mi_joint"]
    out = console if console.is_terminal else Console(file=console.file, width=max(console.width, _LOG_WIDTH))
    # Numbers are never cut: the first layout that fits whole is drawn.
    for std, dropped in _SWEEP_LAYOUTS:
        shown = [m for m in metrics if m not in dropped]
        table = _sweep_table(summary, title, shown, std)
        # measured unbounded: rich clamps a measurement to the width it is given
        if Measurement.get(out, out.options.update_width(10_000), table).maximum <= out.width:
            break
    out.print(table)
    left_out = [_SWEEP_HEADERS[m] for m in metrics if m not in shown]
    if std == "mean" and summary.folds > 1:
        left_out.append("std over folds")
    if left_out:
        console.print(f"left out, too narrow: {', '.join(left_out)} (see summary.csv, or widen the terminal)")
    names = {"one_minus_gpa": "1-GPA", "one_minus_audc": "1-AUDC", "auc": "AUC"}
    for kind in ("pearson", "spearman"):
        parts = [
            f"{names[k]} {v:+.3f}" if v is not None else f"{names[k]} n/a" for k, v in summary.correlations[kind].items()
        ]
        console.print(f"{kind.capitalize()} correlation of gamma with " + ", ".join(parts))
    spread = "one fold: no std" if summary.folds <= 1 else "mean ± std over folds"
    console.print(f"{summary.runs_finished} of {summary.runs_planned} runs finished; {spread}")
    for note in summary.notes:
        warn(console, note)


# A gamma whose model ranks no better than chance (or put a fold in one class) has collapsed:
# its point sits far from the others and would squash them into a corner if the axes fit it.
_CHANCE_MARGIN = 0.02


def _collapsed(row: dict[str, Any]) -> bool:
    return bool(row.get("degenerate_folds")) or row["auc_mean"] <= 0.5 + _CHANCE_MARGIN


def _fitted_limits(values: Sequence[float]) -> tuple[float, float]:
    low, high = min(values), max(values)
    margin = max(0.1 * (high - low), 0.01)
    return low - margin, high + margin


def _tradeoff_points(rows: list[dict[str, Any]], metric: str) -> list[tuple]:
    """(1 - metric, AUC, their stds, gamma, on the Pareto front, collapsed) per gamma whose
    metric could be estimated."""
    return [
        (1 - r[f"{metric}_mean"], r["auc_mean"], r.get(f"{metric}_std") or 0.0, r.get("auc_std") or 0.0, r["gamma"],
         r.get(f"pareto_{metric}"), _collapsed(r))
        for r in rows
        if r.get(f"{metric}_mean") is not None
    ]  # fmt: skip


def _tradeoff_limits(xs, ys, xerr, yerr, collapsed) -> tuple[tuple[float, float], tuple[float, float]]:
    """Axes that fit the gammas that did not collapse, error bars included."""
    kept = [i for i in range(len(xs)) if not collapsed[i]]
    if len(kept) < 2:  # nothing to protect from squashing
        kept = list(range(len(xs)))
    x_limits = _fitted_limits([xs[i] + sign * xerr[i] for i in kept for sign in (-1, 1)])
    y_limits = _fitted_limits([ys[i] + sign * yerr[i] for i in kept for sign in (-1, 1)])
    return x_limits, y_limits


def _tradeoff_legend(axis: Axes, xs, ys, pareto, inside) -> None:
    """The Pareto front through the points on scale, and a legend for what is drawn."""
    from matplotlib.lines import Line2D

    handles = []
    front = sorted((x, y) for x, y, flag, ok in zip(xs, ys, pareto, inside) if flag and ok)
    if front:
        # a marker on the line keeps the legend entry (and a one-point front) visible
        axis.plot(*zip(*front), "-", color="crimson", linewidth=1.2, marker="o", markersize=9,
                  markerfacecolor="none", label="Pareto front", zorder=3)  # fmt: skip
        handles.append(Line2D([], [], color="crimson", linewidth=1.2, marker="o", markersize=9,
                              markerfacecolor="none", label="Pareto front"))  # fmt: skip
    if not all(inside):
        handles.append(Line2D([], [], linestyle="none", marker="o", markerfacecolor="0.8", markeredgecolor="black",
                              label="off scale, pinned to the edge"))  # fmt: skip
    if handles:
        axis.legend(handles=handles, loc="best", fontsize=8)


def _tradeoff_panel(axis: Axes, rows: list[dict[str, Any]], metric: str, label: str, gammas: list[float]) -> PathCollection | None:
    """One panel, AUC against ``label``; returns its scatter (None when no gamma has the metric)."""
    points = _tradeoff_points(rows, metric)
    if not points:
        axis.text(0.5, 0.5, f"no gamma has an estimable {label[4:]}", ha="center", va="center", transform=axis.transAxes)
        return None
    xs, ys, xerr, yerr, gs, pareto, collapsed = zip(*points)
    x_limits, y_limits = _tradeoff_limits(xs, ys, xerr, yerr, collapsed)
    inside = [x_limits[0] <= x <= x_limits[1] and y_limits[0] <= y <= y_limits[1] for x, y in zip(xs, ys)]
    # off-scale points are pinned to the nearest edge and labelled with their true values
    shown_x = [min(max(x, x_limits[0]), x_limits[1]) for x in xs]
    shown_y = [min(max(y, y_limits[0]), y_limits[1]) for y in ys]
    for i in (i for i in range(len(points)) if inside[i]):
        axis.errorbar(xs[i], ys[i], xerr=xerr[i], yerr=yerr[i], fmt="none", ecolor="0.75", elinewidth=0.8, zorder=1)
    scatter = axis.scatter(
        shown_x, shown_y, c=gs, cmap="viridis", vmin=min(gammas), vmax=max(gammas), s=40, zorder=2,
        clip_on=False, edgecolors=["none" if flag else "black" for flag in inside],
    )  # fmt: skip
    for x, y, g, flag, true_x, true_y in zip(shown_x, shown_y, gs, inside, xs, ys):
        text = f"γ={g:g}" if flag else f"γ={g:g} off scale ({label} {true_x:.2f}, AUC {true_y:.2f})"
        axis.annotate(text, (x, y), textcoords="offset points", fontsize=7,
                      xytext=(5, 4) if flag else (-6, 6), ha="left" if flag else "right")  # fmt: skip
    _tradeoff_legend(axis, xs, ys, pareto, inside)
    axis.set_xlim(*x_limits)
    axis.set_ylim(*y_limits)
    axis.set_xlabel(f"{label} (higher is fairer)")
    axis.set_ylabel("AUC")
    axis.grid(alpha=0.3)
    return scatter


def tradeoff_figure(summary: SweepSummary, *, title: str) -> Figure:
    """The figure :func:`plot_tradeoff` saves (separate so that its axes can be inspected)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in summary.rows if r.get("auc_mean") is not None]
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.8), constrained_layout=True)
    gammas = [r["gamma"] for r in rows]
    scatter = None
    for axis, metric, label in ((axes[0], "gpa", "1 - GPA"), (axes[1], "audc", "1 - AUDC")):
        panel = _tradeoff_panel(axis, rows, metric, label, gammas)
        scatter = panel if panel is not None else scatter
    if scatter is not None:  # every GPA and AUDC undefined (e.g. every group below --min-group-size)
        figure.colorbar(scatter, ax=axes, label="gamma")
    figure.suptitle(title)
    return figure


def plot_tradeoff(summary: SweepSummary, path: Path, *, title: str) -> Path:
    """AUC against 1-GPA and against 1-AUDC, points coloured and labelled by gamma, the
    Pareto front drawn (the paper's Figures 2 and 3); axes fit the gammas that did not collapse."""
    import matplotlib.pyplot as plt

    figure = tradeoff_figure(summary, title=title)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def render_gamma_search(console: Console, choice: GammaChoice) -> None:
    """The search's validation table: per gamma, the inner-fold mean AUC and each bounded
    metric, whether it meets every bound, and which gamma was chosen."""
    metrics = list(dict.fromkeys(gate.metric for gate in choice.constraints))
    table = Table(title=f"gamma search: means over {choice.summary.folds} inner folds", header_style="bold", title_justify="left")
    table.add_column("gamma", justify="right")
    table.add_column("AUC", justify="right")
    for metric in metrics:
        table.add_column(_SEARCH_HEADERS.get(metric, metric), justify="right")
    table.add_column("meets", justify="left")
    for row in choice.summary.rows:
        refused = choice.refusal(row)
        verdict = f"no: {refused}" if refused else "yes" if choice.meets(row) else "no"
        if row["gamma"] == choice.gamma:
            verdict = "[bold green]yes: chosen[/]"
        elif row["gamma"] == choice.closest:
            verdict = "[bold yellow]no: closest[/]"
        values = [_number(row.get(f"{m}_mean")) for m in ["auc", *metrics]]
        table.add_row(f"{row['gamma']:g}", *values, verdict)
    console.print(table)


_SEARCH_HEADERS = {
    "dp_difference": "DP", "eo_difference": "EO", "dp_ratio": "DP ratio", "eo_ratio": "EO ratio", "gpa": "GPA",
    "audc": "AUDC", "balanced_accuracy": "bal. acc.",
}  # fmt: skip


# -- the same words for a document (document.py, `sqnn report`) --------------------------------
def number(value: float | None, digits: int = 4) -> str:
    """A figure as the tables show it: fixed decimals, n/a where it could not be estimated."""
    return _number(value, digits)


def metric_labels() -> dict[str, str]:
    """The evaluation's summary metrics, in the tables' order, with their labels."""
    return dict(_SUMMARY_ROWS)


def audit_figures(audit: RepresentationAudit) -> list[tuple[str, str, str]]:
    """The audit table's rows as text: (figure, sampled code, firing probabilities)."""
    return [
        (label, _leakage_cell(audit.code), _leakage_cell(audit.theta)) if key == "leakage_auc"
        else (label, _number(getattr(audit.code, key)), _number(getattr(audit.theta, key)))
        for key, label in _AUDIT_ROWS
    ]  # fmt: skip


def audit_sentences(audit: RepresentationAudit) -> list[str]:
    """What render_audit says under its table, and the audit's warnings, as plain text."""
    return [
        *_below_chance_comments(audit),
        f"joint I(T;S): {_estimate(audit.mi_joint)}",
        _plugin_line(audit),
        f"distinct codes in one draw per row: {audit.distinct_codes}",
        *audit_notes(audit),
    ]
