"""A constraint instead of a gamma: the search chooses honestly and refuses clearly."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sqnn_cli import pipeline, sweep
from sqnn_cli.cli import app
from sqnn_cli.constraints import choose_gamma, refined_gammas, why_none
from sqnn_cli.data import prepare, resolve_roles
from sqnn_cli.estimator import SQNNClassifier
from sqnn_cli.gates import Gate
from sqnn_cli.sweep import SweepSummary

from .conftest import synthetic_table

runner = CliRunner()
TINY = ["--epochs", "3", "--hidden", "8", "--code-size", "4", "--samples", "4"]
MAX_DP = Gate("dp_difference", 0.1, "max", "--max-dp")


def summary(*rows: tuple[float, float, float, int]) -> SweepSummary:
    """A validation summary from (gamma, mean AUC, mean DP, degenerate folds) rows."""
    made = [
        {"gamma": g, "folds": 3, "degenerate_folds": d, "auc_mean": auc, "auc_std": 0.01, "dp_difference_mean": dp}
        for g, auc, dp, d in rows
    ]
    return SweepSummary(made, None, None, None, {}, runs_finished=3 * len(rows), runs_planned=3 * len(rows), folds=3)


def test_the_most_accurate_gamma_that_meets_every_bound_is_chosen():
    choice = choose_gamma(summary((0.0, 0.80, 0.30, 0), (0.4, 0.75, 0.09, 0), (0.6, 0.72, 0.05, 0)), [MAX_DP])
    assert choice.gamma == 0.4 and choice.closest is None


def test_degenerate_and_chance_level_gammas_are_never_chosen():
    rows = (0.0, 0.80, 0.30, 0), (0.8, 0.70, 0.02, 1), (1.0, 0.50, 0.00, 0)
    choice = choose_gamma(summary(*rows), [MAX_DP])
    assert choice.gamma is None and choice.closest == 0.0


def test_with_no_gamma_meeting_the_bounds_the_closest_is_named():
    choice = choose_gamma(summary((0.0, 0.80, 0.30, 0), (0.5, 0.70, 0.12, 0), (0.9, 0.60, 0.15, 0)), [MAX_DP])
    assert choice.gamma is None and choice.closest == 0.5
    assert [row["meets"] for row in choice.to_dict()["validation"]] == [False, False, False]


def test_the_grid_is_refined_towards_the_bounds_when_no_gamma_meets_them():
    # gamma 0.9 misses DP by a little; gamma 1 meets it by ranking at chance.
    bound = Gate("dp_difference", 0.05, "max", "--max-dp")
    choice = choose_gamma(summary((0.0, 0.90, 0.29, 0), (0.9, 0.85, 0.083, 0), (1.0, 0.50, 0.005, 0)), [bound])
    assert choice.gamma is None and choice.closest == 0.9
    assert refined_gammas(choice) == (0.92, 0.94, 0.96, 0.98)
    assert refined_gammas(choose_gamma(summary((0.0, 0.8, 0.05, 0)), [MAX_DP])) == ()


def test_no_refinement_past_the_grids_end_or_where_the_metrics_are_undefined():
    # DP falls with gamma and 0.5, the grid's end, is closest: nothing below it is nearer.
    choice = choose_gamma(summary((0.0, 0.80, 0.22, 0), (0.5, 0.75, 0.17, 0)), [MAX_DP])
    assert choice.closest == 0.5 and refined_gammas(choice) == ()
    undefined = choose_gamma(summary((0.0, 0.80, None, 0), (0.5, 0.75, None, 0)), [MAX_DP])
    assert refined_gammas(undefined) == ()
    assert "cannot be estimated on the inner folds" in why_none(undefined)


def test_the_search_refines_until_a_gamma_meets_the_bound(monkeypatch):
    """The refinement rounds run the new gammas only, and the choice sees every run."""
    table = synthetic_table(200)
    roles = resolve_roles(table, target="y", sensitive=["group"])
    dp = {0.0: 0.3, 0.5: 0.2, 1.0: 0.0, 0.6: 0.15, 0.7: 0.09, 0.8: 0.04, 0.9: 0.01}
    asked = []

    def runs(frame, roles, params, gammas, **kwargs):
        asked.append(tuple(gammas))
        auc = {g: 0.5 if g == 1.0 else 0.9 - 0.2 * g for g in gammas}
        return [{"gamma": g, "fold": f, "metrics": {"auc": auc[g] + f / 1000, "dp_difference": dp[g]}} for g in gammas for f in range(3)]

    monkeypatch.setattr(sweep, "validation_records", runs)
    monkeypatch.setattr("sqnn_cli.constraints.REFINED_POINTS", 4)
    search = pipeline.GammaSearch((MAX_DP,), gammas=(0.0, 0.5, 1.0))
    choice = pipeline.search_gamma(table, roles, SQNNClassifier(epochs=1, device="cpu"), search)
    assert asked == [(0.0, 0.5, 1.0), (0.6, 0.7, 0.8, 0.9)]
    assert choice.gamma == 0.7 and [row["gamma"] for row in choice.summary.rows] == [0.0, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]


def test_an_unboundable_metric_is_refused():
    with pytest.raises(ValueError, match="no bound can be put on accuracy"):
        choose_gamma(summary((0.0, 0.8, 0.3, 0)), [Gate("accuracy", 0.9, "min", "--min-accuracy")])


def test_the_search_validates_on_training_rows_only(monkeypatch):
    """With a held-out split, the inner folds never see a held-out row."""
    table = synthetic_table(300)
    roles = resolve_roles(table, target="y", sensitive=["group"])
    seen = {}

    def spy(frame, roles, params, gammas, **kwargs):
        seen["index"] = frame.index
        return [{"gamma": 0.0, "fold": fold, "metrics": {"auc": 0.8 + fold / 100, "dp_difference": 0.05}} for fold in range(3)]

    monkeypatch.setattr(sweep, "validation_records", spy)
    estimator = SQNNClassifier(epochs=1, device="cpu")
    choice = pipeline.search_gamma(table, roles, estimator, pipeline.GammaSearch((MAX_DP,)), test_size=0.3)
    assert choice.gamma == 0.0
    data = prepare(table, roles, for_training=True)
    train_rows, test_rows = pipeline._held_out_rows(data, 0.3, 0)
    assert set(seen["index"]) == set(data.kept_index[train_rows])
    assert not set(seen["index"]) & set(data.kept_index[test_rows])


@pytest.fixture
def s_leaks(tmp_path) -> str:
    path = tmp_path / "leaks.csv"
    synthetic_table(500).to_csv(path, index=False)
    return str(path)


def test_train_with_a_bound_chooses_gamma_and_records_the_search(s_leaks, tmp_path):
    out = tmp_path / "model"
    args = ["train", s_leaks, "-s", "group", "--max-dp", "0.9", "--search-gammas", "0,0.5", "--search-folds", "2"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json", "--epochs", "20", "--hidden", "16"])
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    search = payload["gamma_search"]
    assert search["chosen_gamma"] in (0.0, 0.5) and [row["gamma"] for row in search["validation"]] == [0.0, 0.5]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["model"]["params"]["gamma"] == search["chosen_gamma"] and meta["gamma_search"] == search


def test_an_unreachable_bound_exits_1_and_writes_no_model(s_leaks, tmp_path):
    out = tmp_path / "model"
    args = ["train", s_leaks, "-s", "group", "--max-dp", "0", "--min-dp-ratio", "1", "--search-gammas", "0,1", "--search-folds", "2"]
    result = runner.invoke(app, [*args, "--out", str(out), "--json", *TINY])
    assert result.exit_code == 1
    assert "no gamma meets --max-dp 0, --min-dp-ratio 1" in result.stderr and not out.exists()
    payload = json.loads(result.stdout)
    assert payload["exit_code"] == 1 and payload["gamma_search"]["chosen_gamma"] is None


@pytest.mark.parametrize(
    "args, message",
    [
        (["--gamma", "0.3", "--max-dp", "0.1"], "--gamma and --max-dp do not go together"),
        (["--search-gammas", "0,0.5"], "--search-gammas sets how gamma is searched"),
        (["--search-folds", "2"], "--search-folds sets how gamma is searched"),
        (["--max-dp", "0.1", "--search-gammas", "0,2"], "every gamma of --search-gammas must be in [0, 1]"),
    ],
)
def test_search_options_that_make_no_sense_are_refused_before_reading(args, message, tmp_path):
    result = runner.invoke(app, ["train", str(tmp_path / "absent.csv"), "-s", "group", *args])
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "absent.csv" not in result.stderr


def test_the_default_search_grid_is_the_sweeps():
    assert pipeline.GammaSearch((MAX_DP,)).gammas == sweep.gamma_grid(None, 11)
