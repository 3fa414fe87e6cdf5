"""Bootstrap confidence intervals (issue 15, item 2): the resampled metrics are evaluate's
metrics, the intervals are seeded, stratified, honest about small groups and undefined
resamples, agree with fairlearn's MetricFrame bootstrap, and cover the truth at their level;
gates can be judged on an interval's pessimistic end."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sqnn_cli import report
from sqnn_cli.cli import app
from sqnn_cli.errors import ParameterError
from sqnn_cli.gates import Gate, check_gates
from sqnn_cli.metrics import _encode_groups, evaluate_scores
from sqnn_cli.uncertainty import (
    GROUP_METRICS,
    OVERALL_METRICS,
    BootstrapSettings,
    _draw_counts,
    _resample_metrics,
    _table,
    bootstrap_intervals,
)

from .test_cli_errors import TINY, assert_input_error, synthetic
from .test_rendering import WIDTHS, drawn, terminal

runner = CliRunner()


def scored_table(n: int = 600, seed: int = 0, *, groups=("a", "b", "c"), shares=(0.55, 0.4, 0.05)):
    """Labels, scores with ties (rounded to 2 decimals) and a group column with a small group."""
    rng = np.random.default_rng(seed)
    group = rng.choice(groups, size=n, p=shares)
    y = rng.integers(0, 2, n)
    score = np.clip(rng.normal(0.4 + 0.2 * y + 0.1 * (group == groups[0]), 0.2), 0, 1).round(2)
    return y, score, group


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or abs(a - b) < 1e-12


def resampled(y, score, group, weights, *, threshold, min_group_size):
    labels, codes = _encode_groups(group)
    table = _table(y, score, codes, labels.size, threshold, min_group_size)
    # the weights are given per row of the input; the table holds the rows sorted by score
    return _resample_metrics(weights[:, np.argsort(score, kind="stable")], table)


def assert_equals_evaluate(overall, per_group, row, result):
    for name in OVERALL_METRICS:
        assert same(overall[name][row], getattr(result, name)), name
    for g, group in enumerate(result.groups):
        for name in GROUP_METRICS:
            assert same(per_group[name][row, g], getattr(group, name)), (group.group, name)


@pytest.mark.parametrize("threshold, min_group_size", [(0.5, 30), (0.45, 0), (0.5, 1000)])
def test_resampled_metrics_of_the_data_itself_are_evaluates(threshold, min_group_size):
    y, score, group = scored_table()
    overall, per_group = resampled(y, score, group, np.ones((1, y.size)), threshold=threshold, min_group_size=min_group_size)
    expected = evaluate_scores(y, score, sensitive_features=group, threshold=threshold, min_group_size=min_group_size)
    assert_equals_evaluate(overall, per_group, 0, expected)


@pytest.mark.parametrize("seed", range(4))
def test_a_row_drawn_k_times_counts_as_k_copies_of_it(seed):
    y, score, group = scored_table(n=300, seed=seed)
    weights = np.random.default_rng(seed).integers(0, 4, size=(3, y.size)).astype(float)
    overall, per_group = resampled(y, score, group, weights, threshold=0.5, min_group_size=0)
    for row in range(3):
        copies = np.repeat(np.arange(y.size), weights[row].astype(int))
        expected = evaluate_scores(y[copies], score[copies], sensitive_features=group[copies], min_group_size=0)
        assert_equals_evaluate(overall, per_group, row, expected)


def test_resamples_keep_each_groups_size_and_draw_only_its_rows():
    y, score, group = scored_table()
    labels, codes = _encode_groups(group)
    table = _table(y, score, codes, labels.size, 0.5, 30)
    counts = _draw_counts(table, 50, np.random.default_rng(0))
    for columns in table.group_columns:
        assert (counts[:, columns].sum(axis=1) == columns.size).all()
    assert counts.sum() == 50 * y.size
    assert len(np.unique(counts, axis=0)) == 50  # and the resamples differ


def test_intervals_are_seeded_and_hold_the_estimate():
    y, score, group = scored_table()
    first = bootstrap_intervals(y, score, sensitive_features=group, n_resamples=300, seed=1)
    assert first == bootstrap_intervals(y, score, sensitive_features=group, n_resamples=300, seed=1)
    assert first != bootstrap_intervals(y, score, sensitive_features=group, n_resamples=300, seed=2)
    result = evaluate_scores(y, score, sensitive_features=group)
    for name in ("auc", "accuracy", "balanced_accuracy", "audc", "d_audc"):
        lower, upper = first.metrics[name]
        assert lower < getattr(result, name) < upper, name


def test_a_small_group_gets_a_wide_interval_not_silence():
    y, score, group = scored_table(n=2000, shares=(0.6, 0.395, 0.005))
    intervals = bootstrap_intervals(y, score, sensitive_features=group, n_resamples=400)
    widths = {g: intervals.groups[g]["selection_rate"][1] - intervals.groups[g]["selection_rate"][0] for g in "abc"}
    assert widths["c"] > 3 * max(widths["a"], widths["b"])


def test_resamples_where_a_metric_is_undefined_are_counted():
    # one positive in a group of 10: a resample misses it with chance 0.9 ** 10 (about 0.35)
    y, score, group = scored_table(n=1000, shares=(0.6, 0.4, 0.0))
    group[:10], y[:10] = "c", [1] + [0] * 9
    intervals = bootstrap_intervals(y, score, sensitive_features=group, n_resamples=1000)
    missed = intervals.groups_undefined["c"]["tpr"]
    assert 280 < missed < 420
    assert intervals.groups["c"]["tpr"] is not None and "a" not in intervals.groups_undefined
    payload = intervals.group_dict("c")
    assert payload["undefined_resamples"]["tpr"] == missed


def test_a_metric_no_resample_defines_has_no_interval():
    y, score, _ = scored_table()
    intervals = bootstrap_intervals(y, score, sensitive_features=np.full(y.size, "one"), n_resamples=50)
    assert intervals.metrics["dp_difference"] is None and intervals.undefined["dp_difference"] == 50
    assert intervals.metrics["auc"] is not None
    assert json.dumps(intervals.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "settings, fragment",
    [
        ({"confidence_level": 1.0}, "confidence_level must lie strictly between 0 and 1"),
        ({"confidence_level": 0}, "confidence_level must lie strictly between 0 and 1"),
        ({"n_resamples": 1}, "n_resamples must be an integer from 2 to 100000"),
        ({"seed": -1}, "seed must be a non-negative integer"),
    ],
)
def test_bad_settings_name_their_parameter(settings, fragment):
    with pytest.raises(ParameterError, match=fragment):
        BootstrapSettings(**settings)


def test_agrees_with_fairlearns_metricframe_bootstrap():
    """fairlearn resamples all rows and we resample within groups; with groups this large the
    two bootstrap distributions of a selection rate (and of their difference) are the same
    up to O(1/n), so their quantiles must agree within Monte-Carlo error: for a quantile q
    from B resamples of a roughly normal statistic with spread sd, that error is
    sqrt(q (1 - q) / B) / phi(z_q) * sd. The tolerance is 4 of those, both sides combined."""
    from fairlearn.metrics import MetricFrame, selection_rate

    rng = np.random.default_rng(3)
    group = rng.choice(["a", "b"], size=1200, p=[0.6, 0.4])
    predicted = (rng.random(group.size) < np.where(group == "a", 0.5, 0.3)).astype(int)
    y = rng.integers(0, 2, group.size)
    theirs = MetricFrame(
        metrics=selection_rate, y_true=y, y_pred=predicted, sensitive_features=group, n_boot=300,
        ci_quantiles=[0.025, 0.975], random_state=0,
    )  # fmt: skip
    ours = bootstrap_intervals(y, predicted.astype(float), sensitive_features=group, n_resamples=4000, min_group_size=0)

    rates = {g: predicted[group == g].mean() for g in "ab"}
    spread = {g: math.sqrt(rates[g] * (1 - rates[g]) / (group == g).sum()) for g in "ab"}
    spread["dp"] = math.hypot(spread["a"], spread["b"])
    tail_error = math.sqrt(0.025 * 0.975) / 0.0584  # phi(1.96) = 0.0584
    tolerance = {key: 4 * tail_error * sd * math.sqrt(1 / 300 + 1 / 4000) for key, sd in spread.items()}

    assert np.allclose([float(x) for x in theirs.difference_ci()], ours.metrics["dp_difference"], rtol=0, atol=tolerance["dp"])
    for g in "ab":
        expected = [float(bound[g]) for bound in theirs.by_group_ci]
        assert np.allclose(expected, ours.groups[g]["selection_rate"], rtol=0, atol=tolerance[g]), g


def coverage(sample, draws: int = 400) -> dict[str, float]:
    """Share of ``draws`` samples whose 95 % intervals (200 resamples) hold the population's
    DP difference, 0.2, and group b's selection rate, 0.3; ``sample(rng)`` draws one sample
    as (y, predicted, group, sample_weight). With 400 draws a true 95 % reads 95 +- 2.2 % (2 sd)."""
    rng = np.random.default_rng(0)
    covered = {"dp_difference": 0, "selection_rate_b": 0}
    for draw in range(draws):
        y, predicted, group, sample_weight = sample(rng)
        intervals = bootstrap_intervals(
            y, predicted, sensitive_features=group, n_resamples=200, seed=draw, min_group_size=0, sample_weight=sample_weight
        )  # fmt: skip
        lower, upper = intervals.metrics["dp_difference"]
        covered["dp_difference"] += lower <= 0.2 <= upper
        lower, upper = intervals.groups["b"]["selection_rate"]
        covered["selection_rate_b"] += lower <= 0.3 <= upper
    return {name: count / draws for name, count in covered.items()}


def test_95_percent_intervals_cover_the_true_value_95_percent_of_the_time():
    """A population whose groups select at 0.5 and 0.3 (DP difference 0.2): samples of
    150 + 100 rows."""
    group = np.repeat(["a", "b"], [150, 100])

    def sample(rng):
        predicted = (rng.random(group.size) < np.where(group == "a", 0.5, 0.3)).astype(float)
        return (rng.random(group.size) < 0.5).astype(int), predicted, group, None

    for name, share in coverage(sample).items():
        assert 0.92 <= share <= 0.98, (name, share)


# -- sample weights ----------------------------------------------------------------------
def weighted_resamples(y, score, group, sample_weight, counts, *, min_group_size):
    """The bootstrap's metrics for each row of draw counts, the drawn rows carrying their weights."""
    labels, codes = _encode_groups(group)
    table = _table(y, score, codes, labels.size, 0.5, min_group_size, sample_weight)
    order = np.argsort(score, kind="stable")
    return _resample_metrics(counts[:, order] * table.sample_weight, table)


@pytest.mark.parametrize("min_group_size", [0, 30])
def test_a_weighted_resample_is_the_weighted_metrics_of_the_drawn_rows(min_group_size):
    y, score, group = scored_table(n=400, seed=5, shares=(0.5, 0.4, 0.1))
    rng = np.random.default_rng(5)
    sample_weight = rng.choice([0.0, 0.5, 1.0, 2.5], size=y.size)
    counts = rng.integers(0, 4, size=(3, y.size)).astype(float)
    counts[2, group == "c"] = 0  # this resample drew only rows of weight 0 from c: c is absent
    overall, per_group = weighted_resamples(y, score, group, sample_weight, counts, min_group_size=min_group_size)
    for row in range(3):
        expected = evaluate_scores(
            y, score, sensitive_features=group, min_group_size=min_group_size, sample_weight=counts[row] * sample_weight
        )  # fmt: skip
        assert expected.zero_weight_groups == (("c",) if row == 2 else ())
        assert_equals_evaluate(overall, per_group, row, expected)


def test_weighted_intervals_are_seeded_and_all_ones_weights_change_nothing():
    y, score, group = scored_table()
    sample_weight = np.random.default_rng(1).choice([0.5, 1.0, 3.0], size=y.size)
    settings = dict(sensitive_features=group, n_resamples=200)
    first = bootstrap_intervals(y, score, seed=1, sample_weight=sample_weight, **settings)
    assert first == bootstrap_intervals(y, score, seed=1, sample_weight=sample_weight, **settings)
    assert first != bootstrap_intervals(y, score, seed=2, sample_weight=sample_weight, **settings)
    unweighted = bootstrap_intervals(y, score, seed=1, **settings)
    assert first != unweighted
    assert bootstrap_intervals(y, score, seed=1, sample_weight=np.ones(y.size), **settings) == unweighted
    estimate = evaluate_scores(y, score, sensitive_features=group, sample_weight=sample_weight)
    for name in ("auc", "accuracy", "balanced_accuracy", "audc"):
        lower, upper = first.metrics[name]
        assert lower < getattr(estimate, name) < upper, name


def test_a_group_of_weight_zero_has_no_interval_and_stays_out_of_the_fairness_figures():
    y, score, group = scored_table(n=1000, shares=(0.5, 0.3, 0.2))
    sample_weight = np.where(group == "c", 0.0, 1.0)
    weighted_ = bootstrap_intervals(y, score, sensitive_features=group, n_resamples=100, sample_weight=sample_weight)
    assert all(interval is None for interval in weighted_.groups["c"].values())
    assert weighted_.groups_undefined["c"] == dict.fromkeys(GROUP_METRICS, 100)
    # c's rates are undefined, yet no across-group figure is: they are a's and b's
    assert not weighted_.undefined
    estimate = evaluate_scores(y, score, sensitive_features=group, sample_weight=sample_weight)
    lower, upper = weighted_.metrics["dp_difference"]
    assert estimate.zero_weight_groups == ("c",) and lower < estimate.dp_difference < upper


def test_weighted_95_percent_intervals_cover_the_population_value_95_percent_of_the_time():
    """Group b's population is two strata: a quarter selected at 0.6, three quarters at 0.2
    (rate 0.3). The sample draws b's rows from either stratum with chance 1/2, so each row
    stands for share / (1/2) of the population: weights 0.5 and 1.5. Group a (rate 0.5) is
    sampled as it is. Unweighted, b's sample rate is 0.4, two standard errors off 0.3 (such
    intervals cover 0.3 about half the time); the weighted ones must cover it at 95 %."""
    group = np.repeat(["a", "b"], [150, 100])

    def sample(rng):
        first_stratum = (group == "b") & (rng.random(group.size) < 0.5)
        rate = np.where(group == "a", 0.5, np.where(first_stratum, 0.6, 0.2))
        predicted = (rng.random(group.size) < rate).astype(float)
        sample_weight = np.where(group == "a", 1.0, np.where(first_stratum, 0.5, 1.5))
        return (rng.random(group.size) < 0.5).astype(int), predicted, group, sample_weight

    for name, share in coverage(sample).items():
        assert 0.92 <= share <= 0.98, (name, share)


# -- gates on the pessimistic end --------------------------------------------------------
def test_gates_on_bound_judge_ceilings_on_the_upper_end_and_floors_on_the_lower():
    values = {"dp_difference": 0.05, "auc": 0.80, "gpa": 0.01}
    intervals = {"dp_difference": (0.02, 0.12), "auc": (0.70, 0.88), "gpa": None}
    gates = [Gate("dp_difference", 0.1, "max", "--max-dp"), Gate("auc", 0.75, "min", "--min-auc"), Gate("gpa", 0.1, "max", "--max-gpa")]
    on_value = check_gates(values, gates)
    assert [o.passed for o in on_value] == [True, True, True]
    assert all(o.to_dict()["judged_on"] == "value" for o in on_value)
    dp, auc, gpa = check_gates(values, gates, intervals=intervals, confidence_level=0.95)
    assert (dp.passed, dp.value, dp.estimate) == (False, 0.12, 0.05)
    assert (auc.passed, auc.value) == (False, 0.70)
    assert not gpa.passed and gpa.value is None  # no interval: never a silent pass
    assert dp.message == "dp_difference's upper 95% bound = 0.1200 (estimate 0.0500), required <= 0.1: FAILED"
    assert auc.to_dict()["judged_on"] == "lower_bound" and auc.to_dict()["ci"] == 0.95
    assert "cannot be estimated" in gpa.message


# -- the command line --------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("ci")
    synthetic(n=400).to_csv(root / "data.csv", index=False)
    trained = runner.invoke(app, ["train", str(root / "data.csv"), "-s", "sex", "--out", str(root / "model"), *TINY])
    assert trained.exit_code == 0, trained.stderr
    return root / "model", root / "data.csv"


def evaluate(bundle, *args: str):
    model, data = bundle
    return runner.invoke(app, ["evaluate", str(model), str(data), *args])


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--gate-on", "bound", "--max-dp", "0.1"], "--gate-on bound judges on a confidence interval"),
        (["--bootstrap", "500"], "--bootstrap sets the resamples of a confidence interval"),
        (["--ci", "1.5"], "--ci must lie strictly between 0 and 1, got 1.5"),
        (["--seed", "5"], "--seed seeds the resamples of a confidence interval"),
        (["--ci", "0.9", "--gate-on", "bound"], "--gate-on bound says how gates are judged, and none is given"),
    ],
)
def test_evaluate_refuses_interval_options_that_cannot_work(bundle, args, fragment):
    assert_input_error(evaluate(bundle, *args), fragment)


@pytest.mark.parametrize("resamples", ["1", "100001"])
def test_bootstrap_counts_outside_their_bounds_are_usage_errors(bundle, resamples):
    result = evaluate(bundle, "--ci", "0.9", "--bootstrap", resamples)
    assert result.exit_code == 2 and "--bootstrap" in result.output


def test_evaluate_json_gives_an_interval_for_every_metric_and_group(bundle):
    result = evaluate(bundle, "--json", "--ci", "0.9", "--bootstrap", "200", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    payload = json.loads(result.stdout)
    assert (payload["ci"], payload["bootstrap"], payload["bootstrap_seed"]) == (0.9, 200, 3)
    assert set(payload["intervals"]) == set(OVERALL_METRICS)
    for name, (lower, upper) in payload["intervals"].items():
        assert lower <= upper, name
    for group in payload["groups"]:
        assert set(group["intervals"]) == set(GROUP_METRICS)
    plain = json.loads(evaluate(bundle, "--json").stdout)
    assert "intervals" not in plain and "intervals" not in plain["groups"][0]


def test_evaluate_gate_on_bound_fails_where_only_the_value_meets_it(bundle):
    payload = json.loads(evaluate(bundle, "--json", "--ci", "0.95", "--bootstrap", "200").stdout)
    value, upper = payload["dp_difference"], payload["intervals"]["dp_difference"][1]
    ceiling = f"{(value + upper) / 2:.6f}"
    assert evaluate(bundle, "--ci", "0.95", "--bootstrap", "200", "--max-dp", ceiling).exit_code == 0
    on_bound = evaluate(bundle, "--ci", "0.95", "--bootstrap", "200", "--max-dp", ceiling, "--gate-on", "bound")
    assert on_bound.exit_code == 1
    assert "dp_difference's upper 95% bound" in on_bound.stderr and "FAILED" in on_bound.stderr


def test_help_states_the_bootstrap_default_in_force():
    help_text = " ".join(runner.invoke(app, ["evaluate", "--help"], terminal_width=200).stdout.split())
    assert f"[default: {BootstrapSettings.n_resamples}]" in help_text


@pytest.mark.parametrize("width", WIDTHS)
def test_intervals_render_whole_at_80_and_120_columns(width):
    y, score, group = scored_table(groups=("African-American", "Caucasian", "Native American"))
    result = evaluate_scores(y, score, sensitive_features=group)
    intervals = bootstrap_intervals(y, score, sensitive_features=group, n_resamples=100)
    console = terminal(width)
    report.render_evaluation(console, result, title="scored", intervals=intervals)
    text = drawn(console)
    lower, upper = intervals.metrics["dp_difference"]
    assert f"{lower:.4f}–{upper:.4f}" in text
    lower, upper = intervals.groups["Native American"]["selection_rate"]
    assert f"{lower:.3f}–{upper:.3f}" in text
    assert "95% percentile bootstrap, 100 resamples drawn within each group (seed 0)" in " ".join(text.split())


# -- the sweep summary -------------------------------------------------------------------
def test_sweep_summary_gives_a_t_interval_for_each_mean_over_folds():
    from scipy import stats

    from sqnn_cli.sweep import summarise

    aucs = [0.70, 0.74, 0.71]
    records = [{"gamma": 0.5, "fold": f, "metrics": {"auc": auc, "gpa": 0.1, "degenerate": False}} for f, auc in enumerate(aucs)]
    row = summarise(records, runs_planned=3, folds=3).rows[0]
    expected = stats.t.interval(0.95, 2, loc=np.mean(aucs), scale=stats.sem(aucs))
    assert np.allclose((row["auc_ci95_lower"], row["auc_ci95_upper"]), expected, rtol=0, atol=1e-12)
    assert row["gpa_ci95_lower"] == pytest.approx(0.1) and row["gpa_ci95_upper"] == pytest.approx(0.1)  # no spread, no width
    one_fold = summarise(records[:1], runs_planned=1, folds=1).rows[0]
    assert one_fold["auc_ci95_lower"] is None and one_fold["auc_ci95_upper"] is None
