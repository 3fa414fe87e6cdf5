"""Every table and help text readable at 80 columns: numbers are never cut, and a narrow
layout says what it left out."""

from __future__ import annotations

import dataclasses
import io
import re

import click
import pytest
from rich.console import Console
from typer.testing import CliRunner

from sqnn_cli import report
from sqnn_cli.audit import ForestAudit, NeuronFlows, RepresentationAudit
from sqnn_cli.cli import app
from sqnn_cli.information import InformationEstimate
from sqnn_cli.metrics import EvaluationResult, GroupMetrics
from sqnn_cli.sweep import summarise

WIDTHS = (80, 120)
GAMMAS = (0.0, 0.25, 0.5, 0.75, 1.0)


def terminal(width: int) -> Console:
    # a terminal of that width, without colour codes so that the text can be searched
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


def drawn(console: Console) -> str:
    text = console.file.getvalue()
    assert "…" not in text, text
    assert max(len(line) for line in text.splitlines()) <= console.width, text
    return text


def _record(gamma: float, fold: int, *, audit: bool) -> dict:
    auc, gpa = 0.7341 + 0.01 * gamma + 0.001 * fold, 0.2 - 0.1 * gamma + 0.002 * fold
    metrics = {"auc": auc, "gpa": gpa, "audc": gpa / 2, "dp_difference": 0.1, "eo_difference": 0.1, "degenerate": False}
    metrics |= {"d_gpa": 1 - auc + gpa, "d_audc": 1 - auc + gpa / 2, "accuracy": 0.7, "balanced_accuracy": 0.7}
    record = {"gamma": gamma, "fold": fold, "metrics": metrics}
    if audit:
        record["audit"] = {"adrg": 0.05, "leakage_auc": 0.61 + 0.01 * fold, "mi_joint": {"bits": 0.012}}
    return record


def sweep_summary(folds: int, *, audit: bool = False):
    records = [_record(g, f, audit=audit) for g in GAMMAS for f in range(folds)]
    return summarise(records, runs_planned=len(records), folds=folds)


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body line of a drawn table."""
    return [[cell.strip() for cell in line.strip("│").split("│")] for line in text.splitlines() if line.startswith("│")]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("audit", [False, True])
def test_sweep_table_shows_every_gamma_and_whole_numbers(width, audit):
    console = terminal(width)
    summary = sweep_summary(3, audit=audit)
    report.render_sweep(console, summary, title="gamma sweep of compas.csv (bernoulli, 3 fold(s))")
    text = drawn(console)
    gamma_cells = [row[0] for row in table_rows(text) if row[0]]
    assert gamma_cells == ["0", "0.25", "0.5", "0.75", "1"]
    for row in summary.rows:
        for metric in ("auc", "gpa", "audc", "dp_difference"):
            assert f"{row[f'{metric}_mean']:.3f}" in text
    if "dGPA" not in text.split("Pareto")[0]:
        assert re.search(r"left out, too narrow: dGPA, dAUDC\b", text)


def test_sweep_table_at_80_columns_stacks_the_std_and_names_what_it_dropped():
    console = terminal(80)
    report.render_sweep(console, sweep_summary(3), title="sweep")
    text = drawn(console)
    assert "±0.002" in [cell for row in table_rows(text) for cell in row]  # the std on a line of its own
    assert "left out, too narrow: dGPA, dAUDC (see summary.csv" in text


def test_sweep_table_at_80_columns_with_audit_figures_says_the_std_was_left_out():
    console = terminal(80)
    report.render_sweep(console, sweep_summary(3, audit=True), title="sweep")
    text = drawn(console)
    assert "±" not in text.split("runs finished")[0].replace("mean ± std", "")
    assert "left out, too narrow: dGPA, dAUDC, I(T;S), std over folds" in " ".join(text.split())


def test_sweep_table_keeps_everything_in_a_log():
    # a pipe or a CI log has no width: it gets the whole table, not rich's default 80
    console = Console(file=io.StringIO(), width=80)
    report.render_sweep(console, sweep_summary(3, audit=True), title="sweep")
    text = console.file.getvalue()
    assert "…" not in text and "too narrow" not in text
    assert all(header in text for header in ("dGPA", "dAUDC", "ADRG", "leak", "I(T;S)", "±0.001"))


def test_sweep_footer_with_one_fold_claims_no_std():
    console = terminal(120)
    report.render_sweep(console, sweep_summary(1), title="sweep")
    text = drawn(console)
    assert "one fold: no std" in text
    assert "std over folds" not in text and "±" not in text


def _evaluation() -> EvaluationResult:
    groups = tuple(
        GroupMetrics(
            group=name, n=n, base_rate=0.4567, selection_rate=0.3891, tpr=0.7342, fpr=0.2219, fnr=0.2658, ppv=0.6123,
            auc=0.7734,
        )
        for name, n in (("African-American", 3175), ("Caucasian", 2103), ("Native American", 11))
    )
    return EvaluationResult(
        auc=0.734125, accuracy=0.681234, balanced_accuracy=0.679912, gpa=0.021987, audc=0.043219,
        dp_difference=0.183456, eo_difference=0.201234, dp_ratio=0.612345, eo_ratio=0.587654, d_gpa=0.287862, d_audc=0.309094, n=5289,
        threshold=0.4812, groups=groups, small_groups=("Native American",), positive_rate=0.4412,
        degenerate=False, constant_scores=False,
    )  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_evaluation_tables_keep_whole_numbers(width):
    console = terminal(width)
    report.render_evaluation(console, _evaluation(), title="compas.csv scored by compas-model (held-out split 0.3)")
    text = drawn(console)
    for figure in ("0.7341", "0.6812", "0.6799", "0.0220", "0.0432", "0.1835", "0.2012", "0.2879", "0.3091", "5289"):
        assert figure in text
    for figure in ("3175", "0.457", "0.389", "0.734", "0.222", "0.773", "African-American"):
        assert figure in text


def _audit() -> RepresentationAudit:
    code = ForestAudit("code", 0.612345, 0.512345, 0.100001, 0.598765, 0.634567, 0.671234, 0.712345)
    theta = ForestAudit("theta", 0.652345, 0.512345, 0.140001, 0.638765, 0.694567, 0.681234, 0.722345)
    neurons = tuple(NeuronFlows(i, 0.981234, 0.012345 * i, 0.054321, 0.003456) for i in range(4))
    return RepresentationAudit(
        code=code, theta=theta, mi_joint=InformationEstimate(0.001412, "joint", 0.000213, 1000),
        mi_plugin=InformationEstimate(0.961234, "plug-in"), distinct_codes=5012, neurons=neurons,
        n=5289, groups=("African-American", "Caucasian"), trees=200, test_size=0.3, draws=1,
    )  # fmt: skip


@pytest.mark.parametrize("width", WIDTHS)
def test_audit_tables_keep_whole_numbers(width):
    console = terminal(width)
    report.render_audit(console, _audit(), title="representation audit of compas-model on compas.csv")
    text = drawn(console)
    for figure in ("0.6123", "0.5123", "0.1000", "0.5988", "0.6346", "0.6712", "0.7123"):
        assert figure in text
    for figure in ("0.6523", "0.1400", "0.6946", "0.9812", "0.0370", "0.0543", "0.0035"):
        assert figure in text


def _explained_audit(**changes) -> RepresentationAudit:
    """The issue's audit: a leakage AUC of 0.487 on the code, 0.548 on theta, a plug-in
    of 0.96 bits from 5012 distinct codes in 5289 rows next to a joint 0.0014 bits."""
    audit = _audit()
    code = dataclasses.replace(
        audit.code, audited="sampled code", rf_accuracy=0.49, leakage_auc=0.487, leakage_auc_stderr=0.0312
    )
    theta = dataclasses.replace(audit.theta, audited="firing probabilities", leakage_auc=0.548, leakage_auc_stderr=0.0301)
    return dataclasses.replace(audit, **{"code": code, "theta": theta, "theta_gap_stderr": 0.0345, "plugin_sparse_cells": 0.97, **changes})


@pytest.mark.parametrize("width", WIDTHS)
def test_audit_table_leads_with_the_leakage_auc_and_explains_adrg(width):
    console = terminal(width)
    report.render_audit(console, _explained_audit(), title="audit")
    text = drawn(console)
    first_row = next(line for line in text.splitlines() if line.startswith("│"))
    assert "leakage AUC" in first_row and "0.4870 ± 0.0312" in first_row and "0.5480 ± 0.0301" in first_row
    order = ["leakage AUC", "balanced accuracy", "accuracy predicting S", "majority-group share", "ADRG"]
    assert sorted(order, key=text.index) == order
    assert "-0.0223" in text  # the signed gain: worse than the majority guess
    flat = " ".join(text.split())
    assert "a forest worse than the majority guess (gain < 0) counts there as leakage too" in flat
    assert "standard errors from 200 resamples of the test rows" in flat


@pytest.mark.parametrize("width", WIDTHS)
def test_audit_comments_on_a_leakage_auc_below_chance(width):
    console = terminal(width)
    report.render_audit(console, _explained_audit(), title="audit")
    flat = " ".join(drawn(console).split())
    assert "sampled code: leakage AUC 0.4870 is below 0.5, within 2 standard errors of chance: noise, not anti-leakage" in flat
    beyond = _explained_audit()
    beyond = dataclasses.replace(beyond, code=dataclasses.replace(beyond.code, leakage_auc=0.40, leakage_auc_stderr=0.02))
    console = terminal(width)
    report.render_audit(console, beyond, title="audit")
    flat = " ".join(drawn(console).split())
    assert "leakage AUC 0.4000 is below 0.5 by more than 2 standard errors" in flat and "not anti-leakage" in flat


@pytest.mark.parametrize("width", WIDTHS)
def test_plugin_estimate_is_never_printed_bare_beside_the_joint_one(width):
    console = terminal(width)
    report.render_audit(console, _explained_audit(), title="audit")
    flat = " ".join(drawn(console).split())
    assert "plug-in I(T;S) from one draw per row: 0.9612 bits (plug-in), biased upwards: 97% of the (code, group) cells" in flat
    assert "the joint figure is the one to read" in flat
    console = terminal(width)
    report.render_audit(console, _explained_audit(plugin_sparse_cells=0.05), title="audit")
    flat = " ".join(drawn(console).split())
    assert "biased upwards" not in flat
    assert "0.9612 bits (plug-in), 5% of the (code, group) cells expect fewer than 5 rows" in flat


def test_theta_warning_needs_a_gap_beyond_two_standard_errors():
    """0.548 against 0.487 is a gap of 0.061: within 2 x 0.0345, beyond 2 x 0.01."""
    assert report.audit_notes(_explained_audit()) == []
    [note] = report.audit_notes(_explained_audit(theta_gap_stderr=0.01))
    assert "leakage AUC 0.548 vs 0.487: a gap of 0.061, beyond 2 standard errors (0.020)" in note


def _commands():
    import typer.main

    group = typer.main.get_command(app)
    return sorted(group.commands.items())


@pytest.mark.parametrize("name, command", _commands(), ids=lambda value: value if isinstance(value, str) else "")
def test_help_at_80_columns_shows_every_option_name_whole(name, command):
    result = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(len(line) for line in lines) <= 80
    params = command.get_params(click.Context(command, info_name=name))
    names = {opt for param in params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}
    assert "--help" in names
    for option in names:
        assert re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", result.output), f"{option} is cut in {name} --help"
    assert "…" not in result.output


def test_sweep_help_names_the_dask_extra():
    result = CliRunner().invoke(app, ["sweep-gamma", "--help"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    # the help column wraps: read it with the panel's borders and line breaks taken out
    flowing = " ".join(result.output.replace("│", " ").split())
    assert "pip install 'sqnn[dask]'" in flowing


def _collapsed_sweep():
    records = [_record(g, f, audit=False) for g in GAMMAS[:-1] for f in range(3)]
    # gamma 1 collapses: a constant model, AUC 0.5 and GPA 0, far from every other point
    collapsed = {"auc": 0.5, "gpa": 0.0, "audc": 0.0, "dp_difference": 0.0, "eo_difference": 0.0, "degenerate": True}
    collapsed |= {"d_gpa": 0.5, "d_audc": 0.5, "accuracy": 0.6, "balanced_accuracy": 0.5}
    records += [{"gamma": 1.0, "fold": f, "metrics": collapsed} for f in range(3)]
    return summarise(records, runs_planned=len(records), folds=3)


def test_tradeoff_plot_is_written(tmp_path):
    path = report.plot_tradeoff(_collapsed_sweep(), tmp_path / "plots" / "tradeoff.png", title="sweep")
    assert path.read_bytes().startswith(b"\x89PNG")


def test_tradeoff_plot_labels_gammas_draws_the_front_in_its_legend_and_fits_the_axes():
    import matplotlib.pyplot as plt

    summary = _collapsed_sweep()
    figure = report.tradeoff_figure(summary, title="sweep")
    try:
        for axis, metric in zip(figure.axes[:2], ("gpa", "audc")):
            legend = axis.get_legend()
            entries = dict(zip([t.get_text() for t in legend.get_texts()], legend.legend_handles))
            front = entries["Pareto front"]
            assert front.get_linestyle() == "-" and front.get_linewidth() > 0
            assert "off scale, pinned to the edge" in entries
            labels = [t.get_text() for t in axis.texts]
            assert {"γ=0", "γ=0.25", "γ=0.5", "γ=0.75"} <= set(labels)
            assert any(label.startswith("γ=1 off scale") and "AUC 0.50" in label for label in labels)
            # the gammas that did not collapse fill the axes instead of a corner of them
            kept = [r for r in summary.rows if r["gamma"] < 1]
            low, high = axis.get_ylim()
            aucs = [r["auc_mean"] for r in kept]
            assert low < min(aucs) and max(aucs) < high and (max(aucs) - min(aucs)) > 0.2 * (high - low)
            fair = [1 - r[f"{metric}_mean"] for r in kept]
            low, high = axis.get_xlim()
            assert low < min(fair) and max(fair) < high and (max(fair) - min(fair)) > 0.2 * (high - low)
    finally:
        plt.close(figure)
