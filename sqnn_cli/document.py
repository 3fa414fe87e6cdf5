"""The report a user hands on (`sqnn report`): one self-contained HTML file, or GitHub
Markdown for a CI step summary.

It arranges and words what the core returned (pipeline.evaluate, the gates, pipeline.audit,
a sweep's summary.json); it computes no metric. A document is first built as plain
blocks (paragraphs, bullet lists, tables, figures), then written by one of two renderers,
so that the HTML and the Markdown can never say different things.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence, Union

from . import __version__, files, report
from .errors import InputError
from .gates import GateOutcome

if TYPE_CHECKING:
    from matplotlib.figure import Figure as PlotFigure

    from .bundle import ModelBundle
    from .metrics import EvaluationResult
    from .pipeline import AuditOutcome, Evaluation
    from .sweep import SweepSummary

__all__ = [
    "FORMATS",
    "Bullets",
    "Document",
    "Figure",
    "ReportInputs",
    "Section",
    "SweepRecord",
    "Table",
    "build_document",
    "read_sweep",
    "render",
    "to_html",
    "to_markdown",
    "write_document",
]

FORMATS = ("html", "md")

MSG_NO_SWEEP = "'{path}' holds no {name}; give --sweep the directory `sqnn sweep-gamma --out` wrote"
MSG_BAD_SWEEP = "'{path}' is not a summary sqnn sweep-gamma wrote ({reason}); rerun the sweep into a fresh directory"


# -- the document, before it is written -------------------------------------------------------
@dataclass(frozen=True)
class Table:
    """Rows of text under a header; renderers align the figures."""

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    failed_rows: frozenset[int] = frozenset()
    """Rows that breach a gate: highlighted."""


@dataclass(frozen=True)
class Figure:
    """A plot, drawn once: embedded in HTML, named in Markdown."""

    png: bytes
    caption: str


@dataclass(frozen=True)
class Bullets:
    """A list of sentences."""

    items: tuple[str, ...]


Block = Union[str, Table, Figure, Bullets]
"""A str is a paragraph."""


@dataclass(frozen=True)
class Section:
    """A titled part of the report; ``anchor`` names it in the HTML's table of contents."""

    anchor: str
    title: str
    blocks: tuple[Block, ...]


@dataclass(frozen=True)
class Document:
    """The whole report, before either renderer writes it."""

    title: str
    verdict: str
    failed: bool
    """A gate was breached."""
    sections: tuple[Section, ...]


# -- what a report is made of ----------------------------------------------------------------
@dataclass(frozen=True)
class SweepRecord:
    """A finished gamma sweep as its directory holds it."""

    name: str
    summary: SweepSummary
    data_sha256: str | None
    """The checksum of the table the sweep cross-validated on (sweep.json), if recorded."""


@dataclass(frozen=True)
class ReportInputs:
    """Results the core returned, and where they came from."""

    data_name: str
    model_name: str
    bundle: ModelBundle
    evaluation: Evaluation
    min_group_size: int
    gates: tuple[GateOutcome, ...] = ()
    audit: AuditOutcome | None = None
    sweep: SweepRecord | None = None
    data_sha256: str | None = None


# -- reading a sweep directory -----------------------------------------------------------------
def read_sweep(directory: str | Path) -> SweepRecord:
    """The summary a finished ``sqnn sweep-gamma --out DIR`` left in DIR, checked before
    anything is drawn from it."""
    from . import sweep

    directory = Path(directory)
    payload = _read_json(directory / sweep.SUMMARY_JSON)
    _check_summary(payload, directory / sweep.SUMMARY_JSON)
    plan = _read_json(directory / sweep.PLAN_FILE) if (directory / sweep.PLAN_FILE).is_file() else {}
    fingerprint = plan.get("fingerprint") if isinstance(plan, dict) else None
    checksum = fingerprint.get("data_sha256") if isinstance(fingerprint, dict) else None
    summary = sweep.SweepSummary.from_dict(payload)
    return SweepRecord(name=directory.name or str(directory), summary=summary, data_sha256=checksum if isinstance(checksum, str) else None)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise InputError(MSG_NO_SWEEP.format(path=path.parent, name=path.name))
    try:
        return json.loads(path.read_text(encoding="utf-8"), parse_constant=_refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise InputError(MSG_BAD_SWEEP.format(path=path, reason=f"not strict JSON: {str(exc)[:80]}")) from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_summary(payload: Any, path: Path) -> None:
    """Refuse a summary.json that drawing the trade-off curve could choke on."""
    problem = None
    rows = payload.get("gammas") if isinstance(payload, dict) else None
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        problem = "no list of gammas"
    elif not all(_is_number(row.get("gamma")) and "auc_mean" in row for row in rows):
        problem = "a gamma row without its gamma or AUC"
    elif any(
        not (value is None or _is_number(value)) for row in rows for key, value in row.items() if key.endswith(("_mean", "_std"))
    ):
        problem = "a metric that is not a number"
    elif not all(_is_number(payload.get(key)) for key in ("folds", "runs_finished", "runs_planned")):
        problem = "no run counts"
    elif not isinstance(payload.get("correlations"), dict):
        problem = "no correlations"
    elif not isinstance(payload.get("notes", []), list) or not all(isinstance(n, str) for n in payload.get("notes", [])):
        problem = "notes that are not a list of sentences"
    if problem is not None:
        raise InputError(MSG_BAD_SWEEP.format(path=path, reason=problem))


# -- building the document ---------------------------------------------------------------------
def build_document(inputs: ReportInputs) -> Document:
    """Every section a report has, in reading order."""
    failed = [outcome for outcome in inputs.gates if not outcome.passed]
    if not inputs.gates:
        verdict = "no gates given"
    elif failed:
        verdict = f"FAILED: {len(failed)} of {len(inputs.gates)} gate(s) breached ({', '.join(o.gate.option for o in failed)})"
    else:
        verdict = f"passed: all {len(inputs.gates)} gate(s) met"
    sections = [
        _warnings_section(inputs),
        _data_section(inputs),
        _model_section(inputs),
        _evaluation_section(inputs),
        _gates_section(inputs),
        _audit_section(inputs.audit) if inputs.audit is not None else None,
        _sweep_section(inputs.sweep) if inputs.sweep is not None else None,
        Section("caveats", "What these figures do not show", (Bullets(tuple(_caveats(inputs))),)),
    ]
    title = f"sqnn report: {inputs.model_name} on {inputs.data_name}"
    return Document(title=title, verdict=verdict, failed=bool(failed), sections=tuple(s for s in sections if s is not None))


def _warnings_section(inputs: ReportInputs) -> Section | None:
    notes = report.evaluation_warnings(inputs.evaluation, inputs.min_group_size)
    return Section("warnings", "Warnings", (Bullets(tuple(notes)),)) if notes else None


def _data_section(inputs: ReportInputs) -> Section:
    roles, result = inputs.bundle.model.roles, inputs.evaluation.result
    sensitive = ", ".join(roles.sensitive) + (" (their combinations form the groups)" if len(roles.sensitive) > 1 else "")
    bins = "; ".join(f"{column} cut at {', '.join(f'{edge:g}' for edge in edges)}" for column, edges in roles.sensitive_bins.items())
    features = ", ".join(roles.features)
    table = Table(
        ("role", "columns"),
        tuple(
            row
            for row in (
                ("target", f"{roles.target} (positive class {roles.positive_label!r}; labels {', '.join(roles.labels) or 'not recorded'})"),
                ("sensitive", sensitive + (f"; {bins}" if bins else "")),
                ("features", f"{len(roles.features)}: {features}" + ("; the sensitive columns too" if roles.sensitive_as_feature else "")),
                ("dropped", ", ".join(roles.dropped)) if roles.dropped else None,
                ("sample weights", _weighting(inputs.evaluation.weight_column, roles.weight)),
            )
            if row is not None
        ),
    )
    unseen = set(inputs.evaluation.unseen_groups)
    weighted = inputs.evaluation.weight_column is not None
    groups = Table(
        ("group", "rows", *(("weight",) if weighted else ()), "seen in training"),
        tuple(
            (group.group, str(group.n), *((f"{group.weight:.6g}",) if weighted else ()), "no" if group.group in unseen else "yes")
            for group in result.groups
        ),
    )
    dropped = inputs.evaluation.rows_dropped
    lines = f"{inputs.data_name}: {result.n} labelled rows scored" + (
        f", {dropped} left out for a missing target or sensitive value" if dropped else ""
    )
    return Section("data", "Data and roles", (lines + ". Column roles come from the model bundle.", table, groups))


def _weighting(column: str | None, trained_with: str | None) -> str:
    """How the rows were weighed, beside how the model was trained."""
    scored = f"every figure weighs the rows by column {column}" if column else "none: every row weighs the same"
    if trained_with is None or trained_with == column:
        return scored + (" (as in training)" if trained_with else "")
    return scored + f"; the model was trained with the weights of column {trained_with}"


def _model_section(inputs: ReportInputs) -> Section:
    meta = inputs.bundle.meta
    params = meta.get("model", {}).get("params", {})
    table = Table(("option", "value"), tuple((name, _shown(value)) for name, value in params.items()))
    data = meta.get("data", {})
    trained = (
        f"Trained by sqnn {meta.get('sqnn_version', '?')} on {meta.get('created', 'an unrecorded date')} from "
        f"{data.get('file', 'an unrecorded file')} ({data.get('rows_trained', '?')} rows, sha256 "
        f"{str(data.get('sha256', '?'))[:12]}...)."
    )
    rule = inputs.bundle.model.estimator.threshold_rule_
    blocks: list[Block] = [table, trained, report.threshold_note(inputs.evaluation, rule=rule) + "."]
    search = meta.get("gamma_search")
    if isinstance(search, dict):
        bounds = ", ".join(f"{c.get('option')} {c.get('bound')}" for c in search.get("constraints", []) if isinstance(c, dict))
        blocks.append(
            f"gamma {search.get('chosen_gamma')} was chosen by a search on {search.get('folds')} inner folds of the "
            f"training rows to meet {bounds}: {search.get('rule')}."
        )
    for step in meta.get("pruned", []):
        neurons = ", ".join(str(i) for i in step.get("neurons", []))
        blocks.append(f"Pruned: neuron(s) {neurons} removed by {step.get('by')} flow ({step.get('mode')}).")
    return Section("model", "Model", tuple(blocks))


def _shown(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    return "default" if value is None else str(value)


def _evaluation_section(inputs: ReportInputs) -> Section:
    result, payload = inputs.evaluation.result, inputs.evaluation.to_dict()
    gated = {outcome.gate.metric: outcome for outcome in inputs.gates}
    intervals = payload.get("intervals")
    header = ("metric", "value") + ((f"{payload['ci']:.0%} interval",) if intervals else ()) + ("gate", "verdict")
    rows, failed = [], set()
    for key, label in report.metric_labels().items():
        outcome = gated.get(key)
        interval = (_interval(intervals.get(key)),) if intervals else ()
        gate = (_gate_bound(outcome), _gate_verdict(outcome)) if outcome else ("", "")
        if outcome is not None and not outcome.passed:
            failed.add(len(rows))
        rows.append((label, report.number(payload.get(key)), *interval, *gate))
    facts = (
        f"{result.n} rows; {report.number(result.positive_rate, 3)} of them predicted positive at threshold "
        f"{result.threshold:.4g}" + ("; DEGENERATE: every row is predicted the same class" if result.degenerate else "")
    )
    if intervals:
        facts += f". Intervals: {payload['interval_method']}, {payload['bootstrap']} resamples"
    blocks = (Table(header, tuple(rows), frozenset(failed)), facts + ".", _group_table(payload, result.small_groups, inputs.min_group_size))
    return Section("evaluation", "Evaluation", (*blocks, _group_rates_figure(result)))


def _interval(bounds: Any, digits: int = 4) -> str:
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        return "n/a"
    return f"[{report.number(bounds[0], digits)}, {report.number(bounds[1], digits)}]"


def _gate_bound(outcome: GateOutcome) -> str:
    gate = outcome.gate
    text = f"{'≤' if gate.kind == 'max' else '≥'} {gate.bound:g} ({gate.option})"
    if outcome.confidence_level is None:
        return text
    return f"{text}, judged on the {'upper' if gate.kind == 'max' else 'lower'} {outcome.confidence_level:.0%} bound"


def _gate_verdict(outcome: GateOutcome) -> str:
    if outcome.passed:
        return "passed"
    if outcome.degenerate:
        return "FAILED: constant model"
    return "FAILED: not estimable" if outcome.value is None else "FAILED"


_GROUP_RATES = (("base_rate", "base rate"), ("selection_rate", "selection rate"), ("tpr", "TPR"), ("fpr", "FPR"),
                ("fnr", "FNR"), ("ppv", "PPV (precision)"), ("auc", "AUC"))  # fmt: skip


def _group_table(payload: dict[str, Any], small_groups: Sequence[str], min_group_size: int) -> Table:
    """One row per group (the evaluation's JSON view): its rates, with their interval where
    the evaluation has them."""
    rows = []
    for group in payload["groups"]:
        intervals = group.get("intervals") or {}
        rates = [
            report.number(group.get(key), 3) + (f" {_interval(intervals.get(key), 3)}" if intervals else "") for key, _ in _GROUP_RATES
        ]
        note = f"under {min_group_size} rows: left out of the across-group figures" if group["group"] in small_groups else ""
        rows.append((group["group"], str(group["n"]), *rates, note))
    return Table(("group", "rows", *(label for _, label in _GROUP_RATES), "note"), tuple(rows))


def _group_rates_figure(result: EvaluationResult) -> Figure:
    """Selection rate, TPR and FPR per group as bars: the gaps DP and EO measure, at a glance."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [_plot_text(group.group) for group in result.groups]
    figure, axis = plt.subplots(figsize=(8, 0.5 + 0.55 * len(names) * 1.2), constrained_layout=True)
    height = 0.27
    for offset, (label, key) in enumerate((("selection rate", "selection_rate"), ("TPR", "tpr"), ("FPR", "fpr"))):
        rates = [getattr(group, key) for group in result.groups]
        positions = [i + (offset - 1) * height for i in range(len(names))]
        axis.barh(positions, [0 if math.isnan(r) else r for r in rates], height=height, label=label)
    axis.set_yticks(range(len(names)), names)
    axis.invert_yaxis()
    axis.set_xlim(0, 1)
    axis.set_xlabel(f"rate at threshold {result.threshold:.4g}")
    axis.grid(axis="x", alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    return Figure(_png(figure), "Selection rate, TPR and FPR per group (a missing rate is drawn as 0)")


def _plot_text(text: str) -> str:
    """User text as matplotlib draws it literally: a $ would start mathtext."""
    return text.replace("$", r"\$")


def _png(figure: PlotFigure) -> bytes:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _gates_section(inputs: ReportInputs) -> Section:
    if not inputs.gates:
        return Section("gates", "Gates", ("No gate was given. Pass evaluate's gate options (for example --max-dp 0.1 or the four-fifths rule, --min-dp-ratio 0.8) to judge the figures; the command then exits 1 when one is breached.",))
    lines = tuple(f"{outcome.gate.option}: {outcome.message}" for outcome in inputs.gates)
    return Section("gates", "Gates", (Bullets(lines),))


def _audit_section(outcome: AuditOutcome) -> Section:
    audit = outcome.audit
    figures = Table(("", f"sampled code ({audit.draws} draw(s)/row)", "firing probabilities θ"), tuple(report.audit_figures(audit)))
    setting = (
        f"{audit.n} rows, {len(audit.groups)} groups; random forests of {audit.trees} trees trained on "
        f"{1 - audit.test_size:.0%} of the rows (stratified on S) and scored on the rest. At chance the leakage AUC is "
        f"0.5 and the balanced accuracy 1/{len(audit.groups)}."
    )
    neurons = Table(
        ("neuron", "H(T_i)", "I(T_i;S) bias", "I(T_i;y) accuracy", "I(T_i;S|T_-i) conditional"),
        tuple(
            (str(n.neuron), *(report.number(v) for v in (n.entropy, n.bias_flow, n.accuracy_flow, n.conditional_flow)))
            for n in sorted(audit.neurons, key=lambda n: -n.bias_flow)
        ),
    )
    return Section(
        "audit", "Representation audit", (setting, figures, Bullets(tuple(report.audit_sentences(audit))), "Per neuron, by bias flow (bits):", neurons)
    )


_SWEEP_COLUMNS = (("auc", "AUC"), ("gpa", "GPA"), ("audc", "AUDC"), ("dp_difference", "DP"), ("eo_difference", "EO"),
                  ("dp_ratio", "DP ratio"), ("d_gpa", "dGPA"), ("d_audc", "dAUDC"))  # fmt: skip


def _sweep_section(record: SweepRecord) -> Section:
    summary = record.summary
    best = {"dGPA": summary.best_by_d_gpa, "dAUDC": summary.best_by_d_audc, "criterion": summary.best_by_criterion}
    rows = []
    for row in summary.rows:
        cells = [_mean_std(row, key) for key, _ in _SWEEP_COLUMNS]
        pareto = ", ".join(name for name in ("GPA", "AUDC") if row.get(f"pareto_{name.lower()}"))
        chosen = ", ".join(name for name, gamma in best.items() if gamma == row["gamma"])
        if row.get("degenerate_folds"):
            chosen = f"one class in {row['degenerate_folds']} fold(s)"
        rows.append((f"{row['gamma']:g}", str(row.get("folds", "")), *cells, pareto, chosen))
    header = ("gamma", "folds", *(label for _, label in _SWEEP_COLUMNS), "Pareto", "best by")
    spread = "one fold: no std" if summary.folds <= 1 else f"mean ± std over {summary.folds} folds"
    intro = (
        f"Sweep {record.name}: {summary.runs_finished} of {summary.runs_planned} runs finished; {spread}. Best by dGPA, "
        "dAUDC, or the paper's criterion AUC + (1-GPA) + (1-AUDC); Pareto: not dominated in AUC and GPA / AUDC."
    )
    figure = report.tradeoff_figure(summary, title=_plot_text(f"{record.name}: AUC against fairness per gamma"))
    plot = Figure(_png(figure), "AUC against 1-GPA and 1-AUDC per gamma, Pareto front drawn (the sweep's own folds)")
    return Section("sweep", "Trade-off curve", (intro, plot, Table(header, tuple(rows)), *((Bullets(tuple(summary.notes)),) if summary.notes else ())))


def _mean_std(row: dict[str, Any], metric: str) -> str:
    mean, spread = row.get(f"{metric}_mean"), row.get(f"{metric}_std")
    if mean is None:
        return "n/a"
    return report.number(mean, 3) + (f" ± {report.number(spread, 3)}" if spread is not None else "")


def _caveats(inputs: ReportInputs) -> list[str]:
    """What the figures above do not show, in plain words, specific to this report where
    the inputs say something."""
    evaluation, result, roles = inputs.evaluation, inputs.evaluation.result, inputs.bundle.model.roles
    sensitive = " and ".join(f"'{column}'" for column in roles.sensitive)
    caveats = [
        "Group fairness is not individual fairness: equal rates across groups say nothing about whether two similar "
        "people get similar scores, and a model can meet every gate here while treating individuals within a group "
        "arbitrarily.",
        f"Only the groups of {sensitive} are compared. Fairness with respect to any other attribute, or to a "
        "proxy for it, is not measured.",
        f"Every figure is measured on the {result.n} rows of {inputs.data_name}, a sample: another sample gives other "
        "values. "
        + ("The intervals show how far they could move. " if evaluation.to_dict().get("intervals") else
           "Without confidence intervals, a gap of a few points between groups may be noise. ")
        + "Small groups move most.",
        f"DP, EO, their ratios, accuracy, balanced accuracy and the per-group selection rate, TPR, FPR, FNR and PPV "
        f"are taken at the decision threshold {result.threshold:.4g}; another threshold gives other values and can "
        "reverse a verdict. AUC, GPA and AUDC rank the scores and do not depend on it.",
        f"The target '{roles.target}' is taken as the truth: if the recorded outcomes are themselves biased, a model "
        "can match them closely, and look fair by equalized odds, while reproducing that bias.",
        "Calibration within groups (whether a score means the same risk in every group) is not measured beyond "
        "PPV at one threshold. When base rates differ across groups, no imperfect classifier can equalise "
        "selection rates, error rates and PPV at once: which to equalise is a policy choice, not a technical one.",
    ]
    trained_on = inputs.bundle.meta.get("data", {}).get("sha256")
    if inputs.data_sha256 is not None and inputs.data_sha256 == trained_on:
        caveats.append(
            f"{inputs.data_name} is the very table the model was trained on: these figures are in-sample and flatter "
            "the model. Report on held-out rows (`sqnn split` makes them)."
        )
    caveats.append(_audit_caveat(inputs.audit))
    if inputs.sweep is not None:
        where = "this report's table" if inputs.sweep.data_sha256 == inputs.data_sha256 else "the sweep's own table"
        caveats.append(
            f"The trade-off curve comes from cross-validation folds of {where}, with models trained for the sweep: "
            "its figures are not this report's, and the model reported here need not be one of its points."
        )
    return caveats


def _audit_caveat(audit: AuditOutcome | None) -> str:
    if audit is None:
        return "The representation was not audited: pass --audit to measure what the binary code reveals about S."
    return (
        f"The audit measures what random forests of {audit.audit.trees} trees recover of S from the binary code; a "
        "stronger or differently built adversary may recover more, so a leakage AUC near 0.5 means none found by "
        "this probe, not none present. The audit concerns the binary layer, not the final predictions."
    )


# -- writing it -------------------------------------------------------------------------------
def render(document: Document, fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown report format '{fmt}'; choose one of {', '.join(FORMATS)}")
    return to_html(document) if fmt == "html" else to_markdown(document)


def write_document(document: Document, path: str | Path, fmt: str, *, overwrite: bool = False, inputs: Sequence[str | Path] = ()) -> Path:
    """Write ``document`` to ``path`` atomically: a reader sees the old file or the whole new one."""
    text = render(document, fmt)
    files.check_output_file(path, overwrite=overwrite, inputs=inputs)
    return files.atomic_write_text(path, text)


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2328;max-width:80rem;margin:2rem auto;padding:0 1rem;line-height:1.45}
h1{font-size:1.6rem;margin-bottom:.3rem}h2{font-size:1.25rem;border-bottom:1px solid #d0d7de;padding-bottom:.2rem;margin-top:2rem}
.verdict{font-weight:600;padding:.4rem .7rem;border-radius:6px;display:inline-block;background:#dafbe1}
.verdict.failed{background:#ffebe9;color:#a40e26}
nav a{margin-right:1rem}
table{border-collapse:collapse;margin:.8rem 0;font-size:.92rem}
th,td{border:1px solid #d0d7de;padding:.25rem .6rem;text-align:left;vertical-align:top}
th{background:#f6f8fa}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr.failed td{background:#ffebe9;font-weight:600}
figure{margin:1rem 0}img{max-width:100%;height:auto}figcaption{font-size:.85rem;color:#57606a}
.wide{overflow-x:auto}
footer{margin-top:3rem;font-size:.8rem;color:#57606a}
"""

_NUMBER = re.compile(r"^[-+]?(\d|n/a|\[)")


def to_html(document: Document) -> str:
    """One self-contained page: inline CSS, figures as data: URIs, no script, no external
    address; every text is escaped."""
    e = _html_text
    nav = " ".join(f'<a href="#{e(s.anchor)}">{e(s.title)}</a>' for s in document.sections)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{e(document.title)}</title><style>{_CSS}</style></head><body><main>",
        f"<h1>{e(document.title)}</h1>",
        f'<p class="verdict{" failed" if document.failed else ""}">{e(document.verdict)}</p>',
        f"<nav>{nav}</nav>",
    ]
    for section in document.sections:
        parts.append(f'<section id="{e(section.anchor)}"><h2>{e(section.title)}</h2>')
        parts.extend(_html_block(block) for block in section.blocks)
        parts.append("</section>")
    parts.append(f"</main><footer>Written by sqnn {e(__version__)} (sqnn report).</footer></body></html>")
    return "\n".join(parts) + "\n"


def _html_text(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _html_block(block: Block) -> str:
    e = _html_text
    if isinstance(block, Table):
        return f'<div class="wide">{_html_table(block)}</div>'
    if isinstance(block, Figure):
        data = base64.b64encode(block.png).decode("ascii")
        return f'<figure><img src="data:image/png;base64,{data}" alt="{e(block.caption)}"><figcaption>{e(block.caption)}</figcaption></figure>'
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{e(item)}</li>" for item in block.items) + "</ul>"
    return f"<p>{e(block)}</p>"


def _html_figure(cell: str) -> str:
    """A figure with its interval or spread on a line of its own, so neither is broken."""
    return _html_text(cell).replace(" [", "<br>[").replace(" ± ", "<br>± ")


def _html_table(table: Table) -> str:
    e = _html_text
    head = "".join(f"<th>{e(name)}</th>" for name in table.header)
    body = []
    for index, row in enumerate(table.rows):
        cells = "".join(f'<td class="n">{_html_figure(cell)}</td>' if i and _NUMBER.match(cell) else f"<td>{e(cell)}</td>" for i, cell in enumerate(row))
        body.append(f'<tr class="failed">{cells}</tr>' if index in table.failed_rows else f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# Characters Markdown (GitHub's flavour) would read as markup anywhere in a line; < > &
# become entities, so that no user text can open an HTML tag in a step summary.
_MARKDOWN_PUNCTUATION = re.compile(r"([\\`*_\[\]|~$])")
# What opens a heading or a list at the start of a paragraph or a list item.
_BLOCK_MARKER = re.compile(r"^(?:([#+-])|(\d+)([.)]))(?=\s|$)")


def _md_text(text: Any, *, starts_block: bool = False) -> str:
    escaped = _MARKDOWN_PUNCTUATION.sub(r"\\\1", re.sub(r"[\r\n]+", " ", str(text)))
    if starts_block:
        escaped = _BLOCK_MARKER.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", escaped)
    return escaped.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(document: Document) -> str:
    """GitHub Markdown for a CI step summary ($GITHUB_STEP_SUMMARY): the same sections,
    tables as pipe tables, figures named but left to the HTML report."""
    lines = [f"# {_md_text(document.title)}", "", f"**{_md_text(document.verdict)}**", ""]
    for section in document.sections:
        lines += [f"## {_md_text(section.title)}", ""]
        for block in section.blocks:
            lines += [*_md_block(block), ""]
    lines.append(f"_Written by sqnn {_md_text(__version__)} (sqnn report)._")
    return "\n".join(lines) + "\n"


def _md_block(block: Block) -> list[str]:
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figure):
        return [f"_Figure: {_md_text(block.caption)} (in the HTML report; Markdown carries no image)._"]
    if isinstance(block, Bullets):
        return [f"- {_md_text(item, starts_block=True)}" for item in block.items]
    return [_md_text(block, starts_block=True)]


def _md_table(table: Table) -> list[str]:
    def line(cells: Sequence[str]) -> str:
        return "| " + " | ".join(cells) + " |"

    lines = [line([_md_text(name) or " " for name in table.header]), line(["---"] * len(table.header))]
    for index, row in enumerate(table.rows):
        cells = [_md_text(cell) for cell in row]
        if index in table.failed_rows:
            cells = [f"**{cell}**" if cell else cell for cell in cells]
        lines.append(line(cells))
    return lines
