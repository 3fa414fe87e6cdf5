"""The `sqnn` command line: one thin function per command.

Each command reads its inputs, calls the core, hands results to :mod:`report` and maps
the outcome to an exit code: 0 ok, 1 a gate was breached, 2 bad usage or bad input,
3 internal error.
"""

from __future__ import annotations

import enum
import functools
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from . import __version__, limits, report
from .errors import InputError
from .gates import check_gates, gates_from_options

# The core (torch, scikit-learn, pandas) is imported inside each command, so that
# `sqnn --help` and `sqnn --version` answer at once.

EXIT_OK, EXIT_GATE, EXIT_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="sqnn",
    help=(
        "Train and audit fair classifiers on tabular CSVs with a stochastically quantized "
        "neural network whose binary layer is trained to carry no information about a "
        "sensitive attribute.\n\n"
        "Exit codes: 0 ok, 1 a fairness/quality gate was breached, 2 bad usage or input, "
        "3 internal error."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)
report.keep_option_names_whole()

# Human output goes to stderr so that stdout carries JSON (or nothing) for pipelines.
err = Console(stderr=True)


def _command(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the core's exceptions into one line on stderr and the documented exit code;
    under --json, stdout still carries one JSON object, ``{"error": ..., "exit_code": ...}``,
    so that a pipeline parsing it never finds nothing."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        def fail(message: str, code: int) -> typer.Exit:
            report.error(err, message)
            if kwargs.get("json_output"):
                typer.echo(report.to_json({"error": message, "exit_code": code}))
            return typer.Exit(code)

        try:
            if "threads" not in kwargs:
                return func(*args, **kwargs)
            from .estimator import limit_threads

            # The whole command, not only training: scoring, the audit's forests and
            # numpy's BLAS run on --threads too, and the counts come back afterwards.
            with limit_threads(kwargs["threads"]):
                return func(*args, **kwargs)
        except typer.Exit:
            raise
        except InputError as exc:
            raise fail(str(exc), EXIT_INPUT) from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing was written", EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            if os.environ.get("SQNN_DEBUG"):
                raise
            message = f"internal error: {type(exc).__name__}: {exc} (rerun with SQNN_DEBUG=1 for a traceback)"
            raise fail(message, EXIT_INTERNAL) from None

    return wrapper


def _version(value: bool) -> None:
    if value:
        typer.echo(f"sqnn {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    version: Annotated[
        bool, typer.Option("--version", help="Show the version and exit.", callback=_version, is_eager=True)
    ] = False,
) -> None:
    """Fair classifiers with stochastically quantized neural networks."""


def _choices(name: str, *values: str) -> Any:
    """A str-valued Enum, which typer shows and checks as a list of choices."""
    return enum.Enum(name, {value: value for value in values}, type=str)


StraightThrough = _choices("StraightThrough", "sigmoid", "identity")
Method = _choices("Method", "bernoulli", "joint")
PruneMode = _choices("PruneMode", "zero", "clamp")
Ranking = _choices("Ranking", "bias", "ratio", "conditional")
Backend = _choices("Backend", "local", "dask")
Device = _choices("Device", "auto", "cpu", "cuda")


# -- shared options -------------------------------------------------------------------
DataArg = Annotated[Path, typer.Argument(help="Table with a header row: .csv, .tsv or .txt, gzipped or not; the delimiter is sniffed (or --sep).", show_default=False)]
SepOpt = Annotated[
    Optional[str],
    typer.Option(
        "--sep",
        help="Column delimiter of the data files: one character, or tab. Default: sniffed from the header (, ; tab |).",
        show_default=False,
    ),
]
ModelArg = Annotated[Path, typer.Argument(help="Model bundle directory written by `sqnn train`.", show_default=False)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout instead of tables.")]
ThresholdOpt = Annotated[
    Optional[float],
    typer.Option(
        min=0.0,
        max=1.0,
        help="Score at or above which a row is predicted positive \\[default: the model's own, chosen in training "
        "to maximise balanced accuracy on its training rows].",
        show_default=False,
    ),
]
SamplesOpt = Annotated[
    Optional[int],
    typer.Option("--samples", min=1, max=limits.MAX_SAMPLES, help="Code draws averaged per score \\[default: the model's]."),
]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        max=limits.MAX_THREADS,
        help="Threads for torch, BLAS and OpenMP \\[default: 1, the fastest for networks this size, idle or busy]. "
        "Results are bit-identical at equal thread counts only.",
        show_default=False,
    ),
]
MinGroupOpt = Annotated[
    int, typer.Option(min=1, help="Groups with fewer rows are listed but left out of the across-group maxima.")
]
DropMissingOpt = Annotated[
    bool, typer.Option("--drop-missing", help="Leave out rows with a missing target or sensitive value (and report how many).")
]
InfAsMissingOpt = Annotated[
    bool,
    typer.Option(
        "--inf-as-missing",
        help="Treat inf and -inf in numeric columns as missing values (imputed and counted) instead of refusing the table.",
    ),
]
AllowDegenerateOpt = Annotated[
    bool,
    typer.Option(
        "--allow-degenerate",
        help="Judge fairness gates even when the model predicts one class for every row (by default they fail: "
        "a constant classifier is trivially fair).",
    ),
]


def _cores(value: int) -> int:
    if value == 0:
        raise typer.BadParameter("0 cores would run nothing; pass -1 for all cores, or a positive count")
    return value


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        widths = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        widths = (0,)
    too_many = len(widths) > limits.MAX_HIDDEN_LAYERS
    if too_many or any(not 0 < w <= limits.MAX_HIDDEN_WIDTH for w in widths) or (text.strip() and not widths):
        raise InputError(
            f"--hidden expects up to {limits.MAX_HIDDEN_LAYERS} layer widths from 1 to {limits.MAX_HIDDEN_WIDTH} "
            f"separated by commas, e.g. 64,64; got '{text if len(text) <= 80 else text[:77] + '...'}'"
        )
    return widths


# -- the options of training, shared by train and sweep-gamma ---------------------------
# The estimator's defaults, written once for both commands (the core is not imported here,
# to keep --help fast); tests/test_cli.py checks they match SQNNClassifier's.
# The default gamma is the largest that costs at most 0.02 AUC on the inner folds of each
# sample dataset's training part (benchmarks/default_gamma.py; README, "Choosing gamma").
DEFAULT_GAMMA = 0.2
DEFAULT_HIDDEN = "64,64"
DEFAULT_EPOCHS = 30
DEFAULT_BATCH_SIZE = 256
DEFAULT_LR = 1e-3
DEFAULT_TEMPERATURE = 1.0
DEFAULT_SAMPLES = 32
SensitiveOpt = Annotated[
    list[str],
    typer.Option("--sensitive", "-s", help="Sensitive column; repeat it to form intersectional groups.", show_default=False),
]
TargetOpt = Annotated[
    Optional[str], typer.Option("--target", "-t", help="Target column \\[default: the last column].", show_default=False)
]
PositiveOpt = Annotated[
    Optional[str],
    typer.Option(help="Target value that is the positive class (needed unless 0/1, boolean or two-valued).", show_default=False),
]
DropOpt = Annotated[Optional[list[str]], typer.Option("--drop", help="Column to ignore; repeatable.", show_default=False)]
SensitiveBinsOpt = Annotated[
    Optional[list[str]],
    typer.Option(help="Group a numeric sensitive column by cut points, e.g. age=25,65; repeatable.", show_default=False),
]
SensitiveAsFeatureOpt = Annotated[
    bool, typer.Option("--sensitive-as-feature", help="Also give the sensitive columns to the model as inputs.")
]
HiddenOpt = Annotated[
    str,
    typer.Option(
        help=f"Widths of the feature layers before the binary layer: up to {limits.MAX_HIDDEN_LAYERS} layers, "
        f"each 1 to {limits.MAX_HIDDEN_WIDTH} wide."
    ),
]
MethodOpt = Annotated[
    Method,
    typer.Option(help="bernoulli: sum over neurons of I(T_i;S) (the paper's BinaryBernoulli); joint: I(T;S) of the whole layer."),
]
CodeSizeOpt = Annotated[
    Optional[int],
    typer.Option(
        min=1,
        max=limits.MAX_CODE_SIZE,
        help="Number of stochastic binary neurons \\[default: 32 for bernoulli, 8 for joint].",
        show_default=False,
    ),
]
JointSamplesOpt = Annotated[
    Optional[int],
    typer.Option(
        min=2,
        max=limits.MAX_JOINT_SAMPLES,
        help="joint only: sampled codes per batch for a Monte-Carlo I(T;S) \\[default: exact enumeration, code size <= 12].",
        show_default=False,
    ),
]
EpochsOpt = Annotated[int, typer.Option(min=1, max=limits.MAX_EPOCHS)]
BatchSizeOpt = Annotated[int, typer.Option(min=1, max=limits.MAX_BATCH_SIZE)]
LrOpt = Annotated[float, typer.Option(help="Adam learning rate (positive).")]
TemperatureOpt = Annotated[float, typer.Option(help="theta = sigmoid(temperature * a) (positive).")]
StraightThroughOpt = Annotated[StraightThrough, typer.Option(help="Gradient surrogate for the sampled bits.")]
TrainSamplesOpt = Annotated[int, typer.Option(min=1, max=limits.MAX_SAMPLES, help="Code draws averaged per score.")]
SeedOpt = Annotated[
    int, typer.Option(min=0, max=limits.MAX_SEED, help="Seeds initialisation, shuffling, sampling and scoring.")
]
DeviceOpt = Annotated[Device, typer.Option(help="Where to train; auto takes a GPU when there is one.")]


def _read_table(path: Path, sep: str | None) -> Any:
    """The table at ``path``, announcing a delimiter that was sniffed rather than given."""
    from .data import read_table

    frame = read_table(path, sep=sep)
    note = frame.attrs.pop("delimiter_note", None)
    if note:
        report.info(err, note)
    return frame


def _roles(frame: Any, *, target, sensitive, positive, drop, sensitive_bins, sensitive_as_feature) -> Any:
    """Column roles from the options, announcing the target and its positive class."""
    from .data import parse_bins, resolve_roles

    roles = resolve_roles(
        frame,
        target=target,
        sensitive=sensitive,
        positive=positive,
        drop=drop or (),
        sensitive_bins=parse_bins(sensitive_bins or ()),
        sensitive_as_feature=sensitive_as_feature,
    )
    where = "the last column; choose with --target" if target is None else "--target"
    report.info(err, f"target: '{roles.target}' ({where}), positive class {roles.positive_label!r}")
    return roles


def _estimator(*, gamma, method, hidden, code_size, joint_samples, temperature, straight_through, epochs, batch_size, lr, samples, seed, device) -> Any:
    from .estimator import SQNNClassifier

    if joint_samples is not None and method is not Method.joint:
        raise InputError("--joint-samples applies to --method joint only")
    estimator = SQNNClassifier(
        gamma=gamma,
        method=method.value,
        hidden=_parse_hidden(hidden),
        code_size=code_size,
        joint_samples=joint_samples,
        temperature=temperature,
        straight_through=straight_through.value,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        n_samples=samples,
        random_state=seed,
        device=device.value,
    )
    estimator._check_params()  # refuse bad options before any data is read or trained on
    return estimator


def _plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """Command options as JSON-ready values for meta.json and sweep.json."""
    return {k: (v.value if isinstance(v, enum.Enum) else str(v) if isinstance(v, Path) else v) for k, v in options.items()}


# -- train ----------------------------------------------------------------------------
@app.command()
@_command
def train(
    data: DataArg,
    sensitive: SensitiveOpt,
    target: TargetOpt = None,
    positive: PositiveOpt = None,
    drop: DropOpt = None,
    sensitive_bins: SensitiveBinsOpt = None,
    sensitive_as_feature: SensitiveAsFeatureOpt = False,
    drop_missing: DropMissingOpt = False,
    inf_as_missing: InfAsMissingOpt = False,
    gamma: Annotated[float, typer.Option(min=0.0, max=1.0, help="Weight of I(T;S) in the loss; 0 ignores fairness.")] = DEFAULT_GAMMA,
    method: MethodOpt = Method.bernoulli,
    hidden: HiddenOpt = DEFAULT_HIDDEN,
    code_size: CodeSizeOpt = None,
    joint_samples: JointSamplesOpt = None,
    epochs: EpochsOpt = DEFAULT_EPOCHS,
    batch_size: BatchSizeOpt = DEFAULT_BATCH_SIZE,
    lr: LrOpt = DEFAULT_LR,
    temperature: TemperatureOpt = DEFAULT_TEMPERATURE,
    straight_through: StraightThroughOpt = StraightThrough.sigmoid,
    samples: TrainSamplesOpt = DEFAULT_SAMPLES,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threads: ThreadsOpt = None,
    test_size: Annotated[
        Optional[float],
        typer.Option(help="Hold out this fraction (stratified) and report its metrics.", show_default=False),
    ] = None,
    threshold: ThresholdOpt = None,
    min_group_size: MinGroupOpt = 30,
    out: Annotated[
        Optional[Path], typer.Option("--out", "-o", help="Bundle directory to write \\[default: DATA-model].", show_default=False)
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing bundle directory.")] = False,
    json_output: JsonOpt = False,
    sep: SepOpt = None,
) -> None:
    """Train a fair classifier on a CSV and save it as a model bundle.

    The loss is gamma * I(T;S) + (1 - gamma) * BCE, with I(T;S) the information (in bits) the stochastic binary layer carries about the sensitive attribute.

    [bold]Examples[/]

      sqnn train sample_data/compas.csv --sensitive race --gamma 0.2

      sqnn train adult.csv.gz -t income -s sex --gamma 0.5 --test-size 0.3 --out adult-model/

      sqnn train sample_data/compas.csv -s race --method joint --gamma 0.5
    """
    options = _plain_options({k: v for k, v in locals().items() if k not in {"data", "json_output", "overwrite", "out"}})
    from . import pipeline
    from .bundle import check_writable, fresh_bundle_path, save_bundle

    estimator = _estimator(
        gamma=gamma, method=method, hidden=hidden, code_size=code_size, joint_samples=joint_samples,
        temperature=temperature, straight_through=straight_through, epochs=epochs, batch_size=batch_size, lr=lr,
        samples=samples, seed=seed, device=device,
    )  # fmt: skip
    bundle_dir = out if out is not None else fresh_bundle_path(data)
    check_writable(bundle_dir, overwrite=overwrite, inputs=(data,))
    frame = _read_table(data, sep)
    roles = _roles(
        frame, target=target, sensitive=sensitive, positive=positive, drop=drop, sensitive_bins=sensitive_bins,
        sensitive_as_feature=sensitive_as_feature,
    )  # fmt: skip
    if out is None:
        report.info(err, f"the model will be written to {bundle_dir}/ (choose with --out)")

    with report.training_progress(err, epochs) as on_epoch:
        outcome = pipeline.train(
            frame,
            roles,
            estimator,
            drop_missing=drop_missing,
            inf_as_missing=inf_as_missing,
            test_size=test_size,
            threshold=threshold,
            min_group_size=min_group_size,
            epoch_callback=on_epoch,
        )
    meta = pipeline.training_meta(outcome, data_path=data, options=options)
    saved = save_bundle(bundle_dir, estimator=estimator, encoder=outcome.encoder, meta=meta, overwrite=overwrite)

    rule = outcome.estimator.threshold_rule_
    if outcome.rows_dropped:
        report.warn(err, f"{outcome.rows_dropped} row(s) with a missing target or sensitive value were left out")
    last = outcome.estimator.history_[-1]
    report.info(
        err,
        f"trained on {outcome.rows_trained} rows in {outcome.seconds:.1f} s: final loss {last['loss']:.4f}, "
        f"BCE {last['bce']:.4f}, MI {last['mi']:.4f} bits; decision threshold {outcome.estimator.threshold_:.4g} "
        f"({rule}); model saved to {saved}/",
    )
    if outcome.test is not None:
        for note in report.evaluation_warnings(outcome.test, min_group_size):
            report.warn(err, note)
        if not json_output:
            report.render_evaluation(err, outcome.test.result, title=f"held-out split ({test_size:g})")
            report.info(err, report.threshold_note(outcome.test, rule=rule))
    if json_output:
        summary = {
            "model": str(saved),
            "rows_trained": outcome.rows_trained,
            "rows_dropped_missing": outcome.rows_dropped,
            "training_seconds": outcome.seconds,
            "final_epoch": last,
            "decision_threshold": {"value": outcome.estimator.threshold_, "rule": rule},
            "test_metrics": outcome.test.to_dict() if outcome.test else None,
        }
        typer.echo(report.to_json(summary))


# -- evaluate -------------------------------------------------------------------------
@app.command()
@_command
def evaluate(
    model: ModelArg,
    data: DataArg,
    json_output: JsonOpt = False,
    threshold: ThresholdOpt = None,
    samples: SamplesOpt = None,
    threads: ThreadsOpt = None,
    min_group_size: MinGroupOpt = 30,
    drop_missing: DropMissingOpt = False,
    inf_as_missing: InfAsMissingOpt = False,
    allow_degenerate: AllowDegenerateOpt = False,
    max_gpa: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if GPA is above this.", show_default=False)] = None,
    max_audc: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if AUDC is above this.", show_default=False)] = None,
    max_dp: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if the DP difference is above this.", show_default=False)] = None,
    max_eo: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if the equalized odds difference is above this.", show_default=False)] = None,
    min_auc: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if AUC is below this.", show_default=False)] = None,
    min_balanced_accuracy: Annotated[
        Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if balanced accuracy is below this.", show_default=False)
    ] = None,
    sep: SepOpt = None,
) -> None:
    """Score a labelled CSV with a trained model: accuracy, fairness and per-group metrics.

    Column roles (target, sensitive columns, features), the target's labels and the decision threshold come from the model bundle. A gate whose metric cannot be estimated fails, and so does a fairness gate on a model that predicts one class for every row: neither ever passes silently.

    [bold]Examples[/]

      sqnn evaluate compas-model/ sample_data/compas.csv

      sqnn evaluate compas-model/ test.csv --json --max-gpa 0.1 --min-auc 0.7

      sqnn evaluate compas-model/ test.csv --max-dp 0.1 --min-balanced-accuracy 0.6 --threshold 0.4
    """
    from . import pipeline
    from .bundle import load_bundle

    bundle = load_bundle(model)
    evaluation = pipeline.evaluate(
        bundle,
        _read_table(data, sep),
        threshold=threshold,
        n_samples=samples,
        min_group_size=min_group_size,
        drop_missing=drop_missing,
        inf_as_missing=inf_as_missing,
    )
    result = evaluation.result
    gates = gates_from_options(
        {
            "--max-gpa": ("gpa", "max", max_gpa),
            "--max-audc": ("audc", "max", max_audc),
            "--max-dp": ("dp_difference", "max", max_dp),
            "--max-eo": ("eo_difference", "max", max_eo),
            "--min-auc": ("auc", "min", min_auc),
            "--min-balanced-accuracy": ("balanced_accuracy", "min", min_balanced_accuracy),
        }
    )
    outcomes = check_gates(
        result.to_dict(), gates, degenerate=result.degenerate, constant_scores=result.constant_scores,
        allow_degenerate=allow_degenerate,
    )  # fmt: skip

    for note in report.evaluation_warnings(evaluation, min_group_size):
        report.warn(err, note)
    if json_output:
        typer.echo(report.to_json({**evaluation.to_dict(), "gates": [o.to_dict() for o in outcomes]}))
    else:
        report.render_evaluation(err, result, title=f"{data.name} scored by {model.name or model}")
    report.info(err, report.threshold_note(evaluation, rule=bundle.estimator.threshold_rule_))
    report.render_gates(err, outcomes)
    if not all(o.passed for o in outcomes):
        raise typer.Exit(EXIT_GATE)


# -- predict --------------------------------------------------------------------------
@app.command()
@_command
def predict(
    model: ModelArg,
    data: DataArg,
    out: Annotated[Path, typer.Option("--out", "-o", help="CSV to write (.csv or .csv.gz).", show_default=False)],
    id_column: Annotated[
        Optional[str],
        typer.Option("--id", help="Write only this column with the scores, instead of every input column.", show_default=False),
    ] = None,
    threshold: ThresholdOpt = None,
    samples: SamplesOpt = None,
    threads: ThreadsOpt = None,
    inf_as_missing: InfAsMissingOpt = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    sep: SepOpt = None,
) -> None:
    """Score a CSV: writes its rows with a `score` (p(y=1)) and a 0/1 `prediction` column.

    Only the feature columns are needed; the target and sensitive columns may be absent.

    [bold]Examples[/]

      sqnn predict compas-model/ sample_data/compas.csv --out scores.csv

      sqnn predict compas-model/ new.csv --out scores.csv.gz --id person_id
    """
    from . import pipeline
    from .bundle import load_bundle
    from .data import check_table_output, write_table

    check_table_output(out, overwrite=overwrite, inputs=(data,))
    bundle = load_bundle(model)
    scored, encoding = pipeline.predict(
        bundle, _read_table(data, sep), threshold=threshold, n_samples=samples, id_column=id_column, inf_as_missing=inf_as_missing
    )
    for note in report.encoding_notes(encoding):
        report.warn(err, note)
    written = write_table(scored, out, overwrite=overwrite, inputs=(data,))
    cut = bundle.estimator.decision_threshold(threshold)
    where = "the model's own, chosen in training" if threshold is None else "given with --threshold"
    report.info(err, f"wrote {len(scored)} scored rows to {written}; prediction = score >= {cut:.4g} ({where})")


# -- audit-representation ---------------------------------------------------------------
@app.command("audit-representation")
@_command
def audit_representation(
    model: ModelArg,
    data: DataArg,
    trees: Annotated[int, typer.Option(min=1, max=limits.MAX_TREES, help="Trees per random forest (the paper used 1000).")] = 1000,
    test_size: Annotated[float, typer.Option(help="Fraction of rows the forests are scored on.")] = 0.3,
    draws: Annotated[int, typer.Option(min=1, max=limits.MAX_AUDIT_DRAWS, help="Sampled codes stacked per row.")] = 1,
    seed: Annotated[int, typer.Option(min=0, max=limits.MAX_SEED, help="Seeds the split, the forests and the estimates.")] = 0,
    n_jobs: Annotated[
        int, typer.Option(min=-1, max=limits.MAX_N_JOBS, callback=_cores, help="Cores for the forests; -1 uses all.")
    ] = -1,
    json_output: JsonOpt = False,
    interventions: Annotated[
        bool, typer.Option("--interventions", help="Also remove the top-k neurons by each ranking, k = 0..m, and report the metrics.")
    ] = False,
    mode: Annotated[PruneMode, typer.Option(help="Remove a neuron by zeroing its outgoing weights, or clamp it to its mean firing rate.")] = PruneMode.zero,
    random_repeats: Annotated[
        int, typer.Option(min=1, max=limits.MAX_RANDOM_REPEATS, help="Random rankings averaged as the control.")
    ] = 5,
    plot: Annotated[Optional[Path], typer.Option(help="With --interventions: write a PNG of bias against AUC per ranking.", show_default=False)] = None,
    threshold: ThresholdOpt = None,
    samples: SamplesOpt = None,
    threads: ThreadsOpt = None,
    min_group_size: MinGroupOpt = 30,
    drop_missing: DropMissingOpt = False,
    inf_as_missing: InfAsMissingOpt = False,
    max_adrg: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if ADRG of either audited view is above this.", show_default=False)] = None,
    max_leakage_auc: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if the leakage AUC of either view is above this.", show_default=False)] = None,
    max_mi: Annotated[Optional[float], typer.Option(min=0.0, help="Fail (exit 1) if the joint I(T;S) in bits is above this.", show_default=False)] = None,
    sep: SepOpt = None,
) -> None:
    """Audit what the binary code still reveals about S: random forests, information flows, interventions.

    Two views are audited: the sampled code (what a released code reveals, the paper's object) and the firing probabilities θ (what anyone holding the encoder sees). Information figures are exact from θ where possible and say which estimator gave them.

    [bold]Examples[/]

      sqnn audit-representation compas-model/ sample_data/compas.csv

      sqnn audit-representation compas-model/ test.csv --json --max-adrg 0.05 --max-leakage-auc 0.6

      sqnn audit-representation compas-model/ test.csv --interventions --plot interventions.png
    """
    from . import pipeline
    from .bundle import load_bundle

    if plot is not None and not interventions:
        raise InputError("--plot draws the intervention curves; add --interventions")
    bundle = load_bundle(model)
    frame = _read_table(data, sep)
    with report.task_progress(err) as progress:
        outcome = pipeline.audit(
            bundle, frame, trees=trees, test_size=test_size, draws=draws, seed=seed, n_jobs=n_jobs,
            interventions=interventions, mode=mode.value, random_repeats=random_repeats, threshold=threshold,
            min_group_size=min_group_size, n_samples=samples, drop_missing=drop_missing,
            inf_as_missing=inf_as_missing, progress=progress,
        )  # fmt: skip
    audit = outcome.audit
    worst = {
        "adrg": max(audit.code.adrg, audit.theta.adrg),
        "leakage_auc": max(audit.code.leakage_auc, audit.theta.leakage_auc),
        "mi_joint": audit.mi_joint.bits,
    }
    outcomes = check_gates(
        worst,
        gates_from_options(
            {
                "--max-adrg": ("adrg", "max", max_adrg),
                "--max-leakage-auc": ("leakage_auc", "max", max_leakage_auc),
                "--max-mi": ("mi_joint", "max", max_mi),
            }
        ),
    )
    if outcome.rows_dropped:
        report.warn(err, f"{outcome.rows_dropped} row(s) with a missing target or sensitive value were left out")
    for note in report.encoding_notes(outcome.encoding) + report.audit_notes(audit):
        report.warn(err, note)
    if plot is not None and outcome.interventions:
        report.plot_interventions(outcome.interventions, plot, title=f"{model.name}: interventions on {data.name}")
        report.info(err, f"wrote the intervention plot to {plot}")
    if json_output:
        payload = audit.to_dict()
        if outcome.interventions is not None:
            payload["interventions"] = {
                "mode": mode.value,
                "curves": report.intervention_summary(outcome.interventions),
                "points": [p.to_dict() for p in outcome.interventions],
            }
        payload["gates"] = [o.to_dict() for o in outcomes]
        typer.echo(report.to_json(payload))
    else:
        report.render_audit(err, audit, title=f"representation audit of {model.name or model} on {data.name}")
        if outcome.interventions:
            report.render_interventions(err, outcome.interventions, mode=mode.value)
    report.render_gates(err, outcomes)
    if not all(o.passed for o in outcomes):
        raise typer.Exit(EXIT_GATE)


# -- prune ------------------------------------------------------------------------------
@app.command()
@_command
def prune(
    model: ModelArg,
    data: Annotated[Path, typer.Argument(help="Labelled CSV on which the neurons' information flows are ranked.", show_default=False)],
    k: Annotated[
        int, typer.Option("--k", min=1, max=limits.MAX_CODE_SIZE, help="How many binary neurons to remove.", show_default=False)
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory of the pruned bundle.", show_default=False)],
    by: Annotated[Ranking, typer.Option(help="bias: I(T_i;S); ratio: I(T_i;S)/I(T_i;y); conditional: I(T_i;S|T_-i).")] = Ranking.bias,
    mode: Annotated[PruneMode, typer.Option(help="Zero the neurons' outgoing weights, or clamp them to their mean firing rate.")] = PruneMode.zero,
    seed: Annotated[
        int, typer.Option(min=0, max=limits.MAX_SEED, help="Seeds the Monte-Carlo estimate behind conditional flows.")
    ] = 0,
    drop_missing: DropMissingOpt = False,
    inf_as_missing: InfAsMissingOpt = False,
    threads: ThreadsOpt = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing bundle directory.")] = False,
    sep: SepOpt = None,
) -> None:
    """Write a copy of a model without the k binary neurons that carry most information about S.

    The pruned bundle works with evaluate, predict and audit-representation; its meta.json records which neurons were removed, how and why.

    [bold]Examples[/]

      sqnn prune compas-model/ sample_data/compas.csv --k 4 --by bias --out compas-pruned/

      sqnn prune compas-model/ train.csv --k 2 --by conditional --mode clamp --out pruned/
    """
    from . import pipeline
    from .bundle import check_writable, load_bundle, save_bundle

    check_writable(out, overwrite=overwrite, inputs=(model, data))
    bundle = load_bundle(model)
    outcome = pipeline.prune(
        bundle, _read_table(data, sep), k=k, by=by.value, mode=mode.value, data_path=data, seed=seed, drop_missing=drop_missing,
        inf_as_missing=inf_as_missing,
    )
    saved = save_bundle(out, estimator=outcome.estimator, encoder=bundle.encoder, meta=outcome.meta, overwrite=overwrite, inputs=(model,))
    removed = ", ".join(str(i) for i in outcome.removed)
    report.info(err, f"removed neuron(s) {removed} (by {by.value}, {mode.value}); pruned model saved to {saved}/")


# -- sweep-gamma ----------------------------------------------------------------------
@app.command("sweep-gamma")
@_command
def sweep_gamma(
    data: DataArg,
    sensitive: SensitiveOpt,
    out: Annotated[Path, typer.Option("--out", "-o", help="Sweep directory (created, or resumed when it holds this sweep).", show_default=False)],
    gammas: Annotated[
        Optional[str], typer.Option(help="Comma-separated gammas, e.g. 0,0.05,0.1 \\[default: --steps evenly spaced in [0, 1]].", show_default=False)
    ] = None,
    steps: Annotated[
        int, typer.Option(min=2, max=limits.MAX_SWEEP_STEPS, help="Evenly spaced gammas in [0, 1] when --gammas is not given.")
    ] = 11,
    folds: Annotated[
        int,
        typer.Option(min=2, max=limits.MAX_FOLDS, help="Stratified folds: each trains on the others and is scored on itself."),
    ] = 3,
    test: Annotated[
        Optional[Path], typer.Option("--test", help="Score every model on this fixed table instead of cross-validating.", show_default=False)
    ] = None,
    target: TargetOpt = None,
    positive: PositiveOpt = None,
    drop: DropOpt = None,
    sensitive_bins: SensitiveBinsOpt = None,
    sensitive_as_feature: SensitiveAsFeatureOpt = False,
    drop_missing: DropMissingOpt = False,
    inf_as_missing: InfAsMissingOpt = False,
    method: MethodOpt = Method.bernoulli,
    hidden: HiddenOpt = DEFAULT_HIDDEN,
    code_size: CodeSizeOpt = None,
    joint_samples: JointSamplesOpt = None,
    epochs: EpochsOpt = DEFAULT_EPOCHS,
    batch_size: BatchSizeOpt = DEFAULT_BATCH_SIZE,
    lr: LrOpt = DEFAULT_LR,
    temperature: TemperatureOpt = DEFAULT_TEMPERATURE,
    straight_through: StraightThroughOpt = StraightThrough.sigmoid,
    samples: TrainSamplesOpt = DEFAULT_SAMPLES,
    seed: SeedOpt = 0,
    device: DeviceOpt = Device.auto,
    threshold: ThresholdOpt = None,
    min_group_size: MinGroupOpt = 30,
    audit: Annotated[bool, typer.Option("--audit", help="Also audit each model's representation (random forests, joint I(T;S)).")] = False,
    trees: Annotated[int, typer.Option(min=1, max=limits.MAX_TREES, help="Trees per forest with --audit.")] = 1000,
    n_jobs: Annotated[
        int,
        typer.Option(
            min=1, max=limits.MAX_N_JOBS, help="Runs trained at once, each on one torch thread; results equal --n-jobs 1."
        ),
    ] = 1,
    backend: Annotated[Backend, typer.Option(help="local: this machine; dask: a Dask cluster (pip install 'sqnn\\[dask]').")] = Backend.local,
    scheduler: Annotated[Optional[str], typer.Option(help="Dask scheduler address for --backend dask, e.g. tcp://host:8786.", show_default=False)] = None,
    plot: Annotated[bool, typer.Option("--plot", help="Write DIR/tradeoff.png: AUC against 1-GPA and 1-AUDC, coloured by gamma.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start afresh in a directory that holds a sweep with other options.")] = False,
    json_output: JsonOpt = False,
    max_gpa: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if the best gamma's (by dGPA) mean GPA is above this.", show_default=False)] = None,
    max_audc: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if the best gamma's (by dAUDC) mean AUDC is above this.", show_default=False)] = None,
    min_auc: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Fail (exit 1) if the best gamma's (by dGPA) mean AUC is below this.", show_default=False)] = None,
    min_correlation: Annotated[
        Optional[float], typer.Option(min=-1.0, max=1.0, help="Fail (exit 1) if Spearman(gamma, 1 - GPA) over the gammas is below this.", show_default=False)
    ] = None,
    sep: SepOpt = None,
) -> None:
    """Train a model per gamma and fold and show the fairness/accuracy trade-off curve.

    Every finished run is appended to DIR/runs.jsonl at once, so a killed sweep loses only the runs in flight; the same command resumes it. One sweep at a time writes to DIR: another is refused (exit 2), naming it. The summary (mean and std over folds per gamma, Pareto-optimal gammas, the best gamma by dGPA, by dAUDC and by the paper's selection criterion AUC + (1-GPA) + (1-AUDC), correlations of gamma with 1-GPA, 1-AUDC and AUC) is written to DIR/summary.csv and DIR/summary.json.

    [bold]Examples[/]

      sqnn sweep-gamma sample_data/compas.csv --sensitive race --out sweep/ --n-jobs 2 --plot

      sqnn sweep-gamma train.csv -s race --test test.csv --gammas 0,0.1,0.2,0.3 --out sweep/ --json

      sqnn sweep-gamma data.csv -s race --out sweep/ --max-gpa 0.1 --min-auc 0.7 --min-correlation 0.9
    """
    options = _plain_options({k: v for k, v in locals().items() if k not in {"data", "json_output", "overwrite", "out", "plot", "n_jobs", "backend", "scheduler"}})
    from . import sweep
    from .data import file_sha256
    from .files import check_output_directory

    estimator = _estimator(
        gamma=0.0, method=method, hidden=hidden, code_size=code_size, joint_samples=joint_samples,
        temperature=temperature, straight_through=straight_through, epochs=epochs, batch_size=batch_size, lr=lr,
        samples=samples, seed=seed, device=device,
    )  # fmt: skip
    if backend is Backend.dask and not scheduler:
        raise InputError("--backend dask needs --scheduler ADDRESS (e.g. tcp://10.0.0.5:8786)")
    grid = sweep.gamma_grid(_parse_floats(gammas, "--gammas") if gammas is not None else None, steps)
    check_output_directory(out)
    frame = _read_table(data, sep)
    roles = _roles(
        frame, target=target, sensitive=sensitive, positive=positive, drop=drop, sensitive_bins=sensitive_bins,
        sensitive_as_feature=sensitive_as_feature,
    )  # fmt: skip
    test_frame = _read_table(test, sep) if test is not None else None
    plan = sweep.SweepPlan(
        estimator_params={k: v for k, v in estimator.get_params().items() if k != "gamma"} | {"hidden": list(estimator.hidden)},
        roles=roles,
        data_sha256=file_sha256(data),
        folds=1 if test is not None else folds,
        test_sha256=file_sha256(test) if test is not None else None,
        drop_missing=drop_missing,
        inf_as_missing=inf_as_missing,
        threshold=threshold,
        min_group_size=min_group_size,
        audit=audit,
        trees=trees,
    )
    # Every run is laid out (and the data checked) before the directory is touched, so a
    # refused table leaves no sweep behind that the corrected command would then clash with.
    all_tasks = sweep.make_tasks(plan, grid, frame, test_frame)
    planned = len(all_tasks)
    # Held until the summary is written: a second sweep into the same directory is refused.
    with sweep.SweepDirectory(out).locked() as directory:
        directory.open(plan, options=options, overwrite=overwrite)
        finished, skipped = directory.finished()
        if skipped:
            more = f"; and {len(skipped) - 3} more" if len(skipped) > 3 else ""
            report.warn(err, f"{len(skipped)} line(s) of {sweep.RUNS_FILE} are ignored: {'; '.join(skipped[:3])}{more}")
        tasks = sweep.pending_tasks(all_tasks, finished)
        if finished:
            report.info(err, f"resuming {out}/: {planned - len(tasks)} of {planned} runs already finished")
        if backend is Backend.dask:
            how = f", on the Dask cluster at {scheduler}"
        elif tasks:
            workers = sweep.worker_count(n_jobs, len(tasks))
            how = f", {workers} at a time" + (f" (--n-jobs {n_jobs} capped at the runs to train)" if workers < n_jobs else "")
        else:
            how = ""
        report.info(err, f"{len(tasks)} run(s) to train: {len(grid)} gammas x {plan.folds} fold(s){how}")

        interrupted = False
        with report.task_progress(err) as progress:
            try:
                for count, record in enumerate(sweep.execute(tasks, n_jobs=n_jobs, backend=backend.value, scheduler=scheduler), 1):
                    directory.append(record)
                    if progress is not None:
                        progress("runs", count, len(tasks))
            except KeyboardInterrupt:
                interrupted = True
        records, _ = directory.finished()
        summary = sweep.summarise(sweep.planned_records(all_tasks, records), runs_planned=planned, folds=plan.folds)
        csv_path, json_path = directory.write_summary(summary)
        if plot and summary.rows:
            plot_path = report.plot_tradeoff(summary, out / sweep.PLOT_FILE, title=f"{data.name}: gamma sweep ({method.value})")
            report.info(err, f"wrote {plot_path}")

    best_gpa, best_audc = summary.row(summary.best_by_d_gpa) or {}, summary.row(summary.best_by_d_audc) or {}
    outcomes = check_gates(
        {
            "gpa": best_gpa.get("gpa_mean"),
            "auc": best_gpa.get("auc_mean"),
            "audc": best_audc.get("audc_mean"),
            "spearman_gpa": summary.correlations["spearman"]["one_minus_gpa"],
        },
        gates_from_options(
            {
                "--max-gpa": ("gpa", "max", max_gpa),
                "--max-audc": ("audc", "max", max_audc),
                "--min-auc": ("auc", "min", min_auc),
                "--min-correlation": ("spearman_gpa", "min", min_correlation),
            }
        ),
    )
    if json_output:
        typer.echo(report.to_json({**summary.to_dict(), "gates": [o.to_dict() for o in outcomes], "interrupted": interrupted}))
    else:
        report.render_sweep(err, summary, title=f"gamma sweep of {data.name} ({method.value}, {plan.folds} fold(s))")
    report.info(err, f"summary written to {csv_path} and {json_path}")
    if interrupted:
        report.error(err, f"interrupted: {summary.runs_finished} of {planned} runs finished and are kept; rerun the same command to resume")
        raise typer.Exit(EXIT_INTERRUPTED)
    report.render_gates(err, outcomes)
    if not all(o.passed for o in outcomes):
        raise typer.Exit(EXIT_GATE)


def _parse_floats(text: str, option: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values:
        raise InputError(f"{option} expects numbers separated by commas, e.g. 0,0.1,0.2; got '{text}'")
    return values


# -- split ----------------------------------------------------------------------------
@app.command()
@_command
def split(
    data: DataArg,
    train_out: Annotated[Path, typer.Option("--train", help="CSV to write the training rows to.", show_default=False)],
    test_out: Annotated[Path, typer.Option("--test", help="CSV to write the held-out rows to.", show_default=False)],
    test_size: Annotated[float, typer.Option(help="Fraction of rows held out.")] = 0.3,
    stratify: Annotated[
        Optional[list[str]],
        typer.Option(help="Keep the proportions of this column's values on both sides; repeatable \\[default: the last column].", show_default=False),
    ] = None,
    seed: Annotated[int, typer.Option(min=0, max=limits.MAX_SEED, help="Seeds the shuffle.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing output files.")] = False,
    sep: SepOpt = None,
) -> None:
    """Split a CSV into stratified training and held-out files, for an honest `evaluate`.

    [bold]Examples[/]

      sqnn split sample_data/compas.csv --train train.csv --test test.csv

      sqnn split adult.csv.gz --train tr.csv.gz --test te.csv.gz --stratify income --stratify sex
    """
    from . import pipeline
    from .data import check_table_output, write_table

    frame = _read_table(data, sep)
    columns = stratify if stratify else [str(frame.columns[-1])]
    if not stratify:
        report.info(err, f"stratifying on '{columns[0]}' (the last column; choose with --stratify)")
    if train_out.resolve() == test_out.resolve():
        raise InputError("--train and --test name the same file")
    for path in (train_out, test_out):
        check_table_output(path, overwrite=overwrite, inputs=(data,))
    train_rows, test_rows = pipeline.split(frame, test_size=test_size, stratify=columns, seed=seed)
    write_table(train_rows, train_out, overwrite=overwrite, inputs=(data,))
    write_table(test_rows, test_out, overwrite=overwrite, inputs=(data,))
    report.info(err, f"wrote {len(train_rows)} training rows to {train_out} and {len(test_rows)} held-out rows to {test_out}")


def main() -> None:
    """The console script: usage errors become one ``error:`` line and exit 2, like every
    other bad input (typer's default is a framed panel)."""
    try:
        code = app(prog_name="sqnn", standalone_mode=False)
    except typer.Abort:
        report.error(err, "aborted")
        sys.exit(EXIT_INTERRUPTED)
    except typer.TyperException as exc:  # click's usage errors (bad option, bad value)
        if type(exc).__name__ == "NoArgsIsHelpError":
            app(prog_name="sqnn", args=["--help"])
        hint = ""
        context = getattr(exc, "ctx", None)
        if context is not None:
            hint = f" (see '{context.command_path} --help')"
        report.error(err, f"{exc.format_message()}{hint}")
        sys.exit(getattr(exc, "exit_code", EXIT_INPUT))
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
