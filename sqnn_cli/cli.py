"""The `sqnn` command line: one thin function per command.

Each command reads its inputs, calls the core, hands results to :mod:`report` and maps
the outcome to an exit code: 0 ok, 1 a gate was breached, 2 bad usage or bad input,
3 internal error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import functools
import inspect
import os
import re
import shlex
import sys
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer
from rich.console import Console

from . import __version__, defaults, imports, limits, report
from .errors import InputError, ParameterError, worded
from .gates import Gate, GateOutcome, check_gates, gates_from_options

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
        except ParameterError as exc:
            raise fail(_sklearn_parameter_message(exc) or exc.worded(_flag), EXIT_INPUT) from None
        except InputError as exc:
            raise fail(str(exc), EXIT_INPUT) from None
        except KeyboardInterrupt:
            raise fail("interrupted; nothing was written", EXIT_INTERRUPTED) from None
        except Exception as exc:  # noqa: BLE001 - the last line of defence
            # scikit-learn's own parameter validation (InvalidParameterError) is bad input too.
            worded = _sklearn_parameter_message(exc) if isinstance(exc, ValueError) else None
            if worded is not None:
                raise fail(worded, EXIT_INPUT) from None
            if os.environ.get("SQNN_DEBUG"):
                raise
            message = f"internal error: {type(exc).__name__}: {exc} (rerun with SQNN_DEBUG=1 for a traceback)"
            raise fail(message, EXIT_INTERNAL) from None

    return wrapper


# The core names parameters as the Python API does; these are the flags that set them
# where the flag is not the parameter's name with dashes.
_FLAGS = {
    "n_samples": "--samples", "random_state": "--seed", "id_column": "--id", "n_threads": "--threads",
    "confidence_level": "--ci", "n_resamples": "--bootstrap", "output": "--out", "sample_weight": "--weight",
}  # fmt: skip


def _flag(parameter: str) -> str:
    return _FLAGS.get(parameter, "--" + parameter.replace("_", "-"))


_SKLEARN_PARAMETER = re.compile(r"The '(\w+)' parameter of \w+ must be (.*)\. Got (.*) instead\.", re.DOTALL)


def _sklearn_parameter_message(exc: ValueError) -> str | None:
    """scikit-learn's "The 'lr' parameter of SQNNClassifier must be ... Got -1 instead." as
    "--lr must be ...; got -1"; None for any other ValueError."""
    from sklearn.utils._param_validation import InvalidParameterError

    match = _SKLEARN_PARAMETER.fullmatch(str(exc)) if isinstance(exc, InvalidParameterError) else None
    if match is None:
        return None
    parameter, requirement, got = match.groups()
    return f"{_flag(parameter)} must be {requirement}; got {got}"


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


StraightThrough = _choices("StraightThrough", *defaults.STRAIGHT_THROUGH_CHOICES)
Method = _choices("Method", *defaults.METHODS)
Objective = _choices("Objective", *defaults.OBJECTIVES)
PruneMode = _choices("PruneMode", "zero", "clamp")
Ranking = _choices("Ranking", "bias", "ratio", "conditional")
Backend = _choices("Backend", "local", "dask")
Device = _choices("Device", *defaults.DEVICES)
GateOn = _choices("GateOn", "value", "bound")


# -- shared options -------------------------------------------------------------------
DataArg = Annotated[
    Path,
    typer.Argument(
        help="Table with a header row: .csv, .tsv or .txt, gzipped or not (the delimiter is sniffed, or --sep), "
        "or .parquet (pip install 'sqnn\\[parquet]').",
        show_default=False,
    ),
]
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
ScoringWeightOpt = Annotated[
    Optional[str],
    typer.Option(
        "--weight",
        help="Weigh every metric's rows by this column of sample weights \\[default: the model's own weight column, "
        "if it was trained with --weight].",
        show_default=False,
    ),
]
UnweightedOpt = Annotated[
    bool, typer.Option("--unweighted", help="Weigh every row the same, even if the model was trained with --weight.")
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


# -- the gates and intervals of an evaluation, shared by evaluate and report -------------
def _bound_option(help_text: str) -> Any:
    """A gate's bound on a metric in [0, 1]; none unless given."""
    return Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help=help_text, show_default=False)]


MaxGpaOpt = _bound_option("Fail (exit 1) if GPA is above this.")
MaxAudcOpt = _bound_option("Fail (exit 1) if AUDC is above this.")
MaxDpOpt = _bound_option("Fail (exit 1) if the DP difference is above this.")
MaxEoOpt = _bound_option("Fail (exit 1) if the equalized odds difference is above this.")
MinDpRatioOpt = _bound_option("Fail (exit 1) if the demographic parity ratio is below this (the four-fifths rule: 0.8).")
MinEoRatioOpt = _bound_option("Fail (exit 1) if the equalized odds ratio is below this.")
MinAucOpt = _bound_option("Fail (exit 1) if AUC is below this.")
MinBalancedAccuracyOpt = _bound_option("Fail (exit 1) if balanced accuracy is below this.")


@dataclass(frozen=True)
class GateOptions:
    """The gates evaluate and report judge an evaluation by, and the intervals they may be
    judged on; each field is an option of both commands (see _with_options)."""

    allow_degenerate: AllowDegenerateOpt = False
    max_gpa: MaxGpaOpt = None
    max_audc: MaxAudcOpt = None
    max_dp: MaxDpOpt = None
    max_eo: MaxEoOpt = None
    min_dp_ratio: MinDpRatioOpt = None
    min_eo_ratio: MinEoRatioOpt = None
    min_auc: MinAucOpt = None
    min_balanced_accuracy: MinBalancedAccuracyOpt = None
    ci: Annotated[
        Optional[float],
        typer.Option(help="Add bootstrap confidence intervals at this level (e.g. 0.95) to every metric, overall and per group.", show_default=False),
    ] = None
    bootstrap: Annotated[
        Optional[int],
        typer.Option(
            min=2, max=limits.MAX_BOOTSTRAP, show_default=False,
            help="Resamples behind --ci, drawn within each sensitive group \\[default: 1000].",
        ),
    ] = None
    gate_on: Annotated[
        GateOn,
        typer.Option(help="Judge the gates on each metric's value, or on the pessimistic end of its --ci interval (upper for --max-*, lower for --min-*)."),
    ] = GateOn.value

    def bounds(self) -> dict[str, Optional[float]]:
        return {name: getattr(self, name) for name in _GATE_METRICS}

    def resampling(self, seed: int | None, *, seed_used_elsewhere: bool = False) -> Any:
        """The bootstrap --ci asks for (None without it); --bootstrap, --seed (unless
        ``seed_used_elsewhere``) and --gate-on bound need --ci, and --gate-on bound a gate."""
        from .uncertainty import BootstrapSettings

        needs_ci = [
            (self.gate_on == GateOn.bound, "--gate-on bound judges on"),
            (self.bootstrap is not None, "--bootstrap sets the resamples of"),
            (seed is not None and not seed_used_elsewhere, "--seed seeds the resamples of"),
        ]
        for given, what in needs_ci:
            if given and self.ci is None:
                raise InputError(f"{what} a confidence interval, and there is none without --ci; add --ci 0.95")
        if self.gate_on == GateOn.bound and not any(value is not None for value in self.bounds().values()):
            raise InputError("--gate-on bound says how gates are judged, and none is given; add one, e.g. --max-dp 0.1")
        resamples = BootstrapSettings.n_resamples if self.bootstrap is None else self.bootstrap
        settings = {"confidence_level": self.ci, "n_resamples": resamples, "seed": seed or 0}
        return None if self.ci is None else BootstrapSettings(**settings)

    def judge(self, evaluation: Any) -> list[GateOutcome]:
        """The gates' outcomes on an evaluation: on each metric's value, or with --gate-on
        bound on the pessimistic end of its interval."""
        result = evaluation.result
        on_bound = self.gate_on == GateOn.bound
        intervals = {"intervals": evaluation.intervals.metrics, "confidence_level": evaluation.intervals.confidence_level} if on_bound else {}
        return check_gates(
            result.to_dict(), _metric_gates(**self.bounds()), degenerate=result.degenerate,
            constant_scores=result.constant_scores, allow_degenerate=self.allow_degenerate, **intervals,
        )  # fmt: skip


# Every gate of evaluate and report (and the bounds train searches gamma for), by parameter
# name: its metric and which side of the bound passes. The flag is the name with dashes.
_GATE_METRICS = {
    "max_gpa": ("gpa", "max"),
    "max_audc": ("audc", "max"),
    "max_dp": ("dp_difference", "max"),
    "max_eo": ("eo_difference", "max"),
    "min_dp_ratio": ("dp_ratio", "min"),
    "min_eo_ratio": ("eo_ratio", "min"),
    "min_auc": ("auc", "min"),
    "min_balanced_accuracy": ("balanced_accuracy", "min"),
}


# -- the options of training, shared by train and sweep-gamma ---------------------------
SensitiveOpt = Annotated[
    list[str],
    typer.Option("--sensitive", "-s", help="Sensitive column; repeat it to form intersectional groups.", show_default=False),
]


@dataclass(frozen=True)
class TrainingOptions:
    """The options `train` and `sweep-gamma` share: the columns' roles and every setting of
    the model but gamma (one value for train, a grid for sweep-gamma). Defaults come from
    sqnn_cli/defaults.py, as SQNNClassifier's do."""

    target: Annotated[
        Optional[str], typer.Option("--target", "-t", help="Target column \\[default: the last column].", show_default=False)
    ] = None
    positive: Annotated[
        Optional[str],
        typer.Option(help="Target value that is the positive class (needed unless 0/1, boolean or two-valued).", show_default=False),
    ] = None
    drop: Annotated[Optional[list[str]], typer.Option("--drop", help="Column to ignore; repeatable.", show_default=False)] = None
    sensitive_bins: Annotated[
        Optional[list[str]],
        typer.Option(help="Group a numeric sensitive column by cut points, e.g. age=25,65; repeatable.", show_default=False),
    ] = None
    sensitive_as_feature: Annotated[
        bool, typer.Option("--sensitive-as-feature", help="Also give the sensitive columns to the model as inputs.")
    ] = False
    weight: Annotated[
        Optional[str],
        typer.Option(
            "--weight",
            help="Column of per-row sample weights (finite numbers >= 0; not a feature): training, the threshold "
            "and every metric weigh each row by it, as if a row of weight k were k rows. Evaluating the model "
            "later weighs by it too.",
            show_default=False,
        ),
    ] = None
    drop_missing: DropMissingOpt = False
    inf_as_missing: InfAsMissingOpt = False
    method: Annotated[
        Method,
        typer.Option(
            help="bernoulli: sum over neurons of I(T_i;S) (the paper's BinaryBernoulli); joint: I(T;S) of the whole layer "
            "(BinaryMI); adversarial: an adversary predicts S from the code and the encoder is trained against it "
            "(AdvCls, Xie et al. 2017); vfae: a variational fair autoencoder with an MMD penalty (Louizos et al. 2016)."
        ),
    ] = Method(defaults.METHOD)
    objective: Annotated[
        Objective,
        typer.Option(
            help="What the binary layer forgets: independence, I(T;S) (aims at demographic parity); "
            "separation, I(T;S|Y) (aims at equalized odds and GPA)."
        ),
    ] = Objective(defaults.OBJECTIVE)
    hidden: Annotated[
        str,
        typer.Option(
            help=f"Widths of the feature layers before the binary layer: up to {limits.MAX_HIDDEN_LAYERS} layers, "
            f"each 1 to {limits.MAX_HIDDEN_WIDTH} wide."
        ),
    ] = ",".join(map(str, defaults.HIDDEN))
    code_size: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            max=limits.MAX_CODE_SIZE,
            help="Number of stochastic binary neurons \\[default: "
            + ", ".join(f"{size} for {method}" for method, size in defaults.CODE_SIZE.items())
            + "].",
            show_default=False,
        ),
    ] = None
    joint_samples: Annotated[
        Optional[int],
        typer.Option(
            min=2,
            max=limits.MAX_JOINT_SAMPLES,
            help="joint only: sampled codes per batch for a Monte-Carlo I(T;S) \\[default: exact enumeration, "
            f"code size <= {defaults.MAX_EXACT_JOINT_NEURONS}].",
            show_default=False,
        ),
    ] = None
    epochs: Annotated[int, typer.Option(min=1, max=limits.MAX_EPOCHS)] = defaults.EPOCHS
    batch_size: Annotated[int, typer.Option(min=1, max=limits.MAX_BATCH_SIZE)] = defaults.BATCH_SIZE
    lr: Annotated[float, typer.Option(help="Adam learning rate (positive).")] = defaults.LR
    temperature: Annotated[float, typer.Option(help="theta = sigmoid(temperature * a) (positive).")] = defaults.TEMPERATURE
    straight_through: Annotated[
        StraightThrough, typer.Option(help="Gradient surrogate for the sampled bits.")
    ] = StraightThrough(defaults.STRAIGHT_THROUGH)
    samples: Annotated[int, typer.Option(min=1, max=limits.MAX_SAMPLES, help="Code draws averaged per score.")] = defaults.N_SAMPLES
    seed: Annotated[
        int, typer.Option(min=0, max=limits.MAX_SEED, help="Seeds initialisation, shuffling, sampling and scoring.")
    ] = defaults.RANDOM_STATE
    device: Annotated[Device, typer.Option(help="Where to train; auto takes a GPU when there is one.")] = Device(defaults.DEVICE)

    def estimator(self, gamma: float) -> Any:
        """The classifier these options describe, its parameters checked before any data is read."""
        from .estimator import SQNNClassifier

        estimator = SQNNClassifier(
            gamma=gamma,
            method=self.method.value,
            objective=self.objective.value,
            hidden=_parse_hidden(self.hidden),
            code_size=self.code_size,
            joint_samples=self.joint_samples,
            temperature=self.temperature,
            straight_through=self.straight_through.value,
            epochs=self.epochs,
            batch_size=self.batch_size,
            lr=self.lr,
            n_samples=self.samples,
            random_state=self.seed,
            device=self.device.value,
        )
        estimator.check_params()
        return estimator

    def roles(self, frame: Any, sensitive: list[str]) -> Any:
        """Column roles from the options, announcing the target and its positive class."""
        from .data import parse_bins, resolve_roles

        roles = resolve_roles(
            frame,
            target=self.target,
            sensitive=sensitive,
            positive=self.positive,
            drop=self.drop or (),
            sensitive_bins=parse_bins(self.sensitive_bins or ()),
            sensitive_as_feature=self.sensitive_as_feature,
            weight=self.weight,
        )
        where = "the last column; choose with --target" if self.target is None else "--target"
        report.info(err, f"target: '{roles.target}' ({where}), positive class {roles.positive_label!r}")
        return roles


def _with_options(options: type, parameter: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command every field of the dataclass ``options`` as an option of its own,
    listed where the command declares ``parameter``; the command receives them as that one
    value. Written once, a group of options two commands share cannot drift apart."""
    hints = typing.get_type_hints(options, include_extras=True)
    fields = dataclasses.fields(options)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(command, eval_str=True)
        shared = [
            inspect.Parameter(field.name, inspect.Parameter.KEYWORD_ONLY, default=field.default, annotation=hints[field.name])
            for field in fields
        ]
        parameters: list[inspect.Parameter] = []
        for each in signature.parameters.values():
            parameters += shared if each.name == parameter else [each.replace(kind=inspect.Parameter.KEYWORD_ONLY)]

        @functools.wraps(command)
        def wrapper(**kwargs: Any) -> Any:
            given = {field.name: kwargs.pop(field.name) for field in fields if field.name in kwargs}
            return command(**{parameter: options(**given)}, **kwargs)

        wrapper.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in parameters}
        return wrapper

    return decorate


_with_training_options = _with_options(TrainingOptions, "training")
_with_gate_options = _with_options(GateOptions, "gates")


def _read_table(path: Path, sep: str | None) -> Any:
    """The table at ``path``, announcing a delimiter that was sniffed rather than given."""
    from .data import read_table

    frame = read_table(path, sep=sep)
    _announce_delimiter(frame.attrs.pop("delimiter_note", None))
    return frame


def _announce_delimiter(note: str | None) -> None:
    if note:
        report.info(err, worded(note, _flag))


def _read_table_chunks(path: Path, sep: str | None) -> Any:
    """The table at ``path`` to be read a chunk at a time (data.read_table_chunks),
    announcing a delimiter that was sniffed rather than given."""
    from .data import read_table_chunks

    table = read_table_chunks(path, sep=sep)
    _announce_delimiter(table.delimiter_note)
    return table


def _plain_options(options: dict[str, Any]) -> dict[str, Any]:
    """Command options as JSON-ready values for meta.json and sweep.json."""
    return {k: (v.value if isinstance(v, enum.Enum) else str(v) if isinstance(v, Path) else v) for k, v in options.items()}


def _metric_gates(**bounds: float | None) -> list[Gate]:
    """Gates for the bounds given, keyed by parameter name (``max_dp=0.1`` is --max-dp)."""
    return gates_from_options({_flag(name): (*_GATE_METRICS[name], bound) for name, bound in bounds.items()})


def _warn_dropped(rows: int) -> None:
    if rows:
        report.warn(err, f"{rows} row(s) with a missing target or sensitive value were left out")


def _conclude(
    result: dict[str, Any],
    outcomes: list[GateOutcome],
    *,
    json_output: bool,
    render: Callable[[], None],
    notes: typing.Sequence[str] = (),
    interrupted: str | None = None,
) -> None:
    """The end every gated command shares: ``result`` and its gates as one JSON object on
    stdout, or ``render()`` on stderr; then ``notes``; then, unless the work was
    ``interrupted`` (exit 130 with that line, no verdict on partial results), the gates'
    lines and exit 1 if any failed."""
    if json_output:
        typer.echo(report.to_json({**result, "gates": [o.to_dict() for o in outcomes]}))
    else:
        render()
    for note in notes:
        report.info(err, note)
    if interrupted:
        report.error(err, interrupted)
        raise typer.Exit(EXIT_INTERRUPTED)
    report.render_gates(err, outcomes)
    if not all(o.passed for o in outcomes):
        raise typer.Exit(EXIT_GATE)


# -- train ----------------------------------------------------------------------------
@app.command()
@_command
@_with_training_options
def train(
    data: DataArg,
    sensitive: SensitiveOpt,
    gamma: Annotated[
        Optional[float],
        typer.Option(
            min=0.0, max=1.0, show_default=False,
            help=f"Weight of I(T;S) in the loss; 0 ignores fairness \\[default: {defaults.GAMMA:g}, or searched to meet the "
            "bounds below].",
        ),
    ] = None,
    *,
    training: TrainingOptions,
    max_dp: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Search gamma: at most this DP difference on inner folds.", show_default=False)] = None,
    max_eo: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Search gamma: at most this equalized odds difference.", show_default=False)] = None,
    min_dp_ratio: Annotated[
        Optional[float], typer.Option(min=0.0, max=1.0, help="Search gamma: at least this DP ratio (0.8: the four-fifths rule).", show_default=False)
    ] = None,
    min_eo_ratio: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Search gamma: at least this equalized odds ratio.", show_default=False)] = None,
    max_gpa: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Search gamma: at most this GPA.", show_default=False)] = None,
    max_audc: Annotated[Optional[float], typer.Option(min=0.0, max=1.0, help="Search gamma: at most this AUDC.", show_default=False)] = None,
    search_gammas: Annotated[
        Optional[str], typer.Option(help="Gammas the search tries \\[default: 0, 0.1, ..., 1].", show_default=False)
    ] = None,
    search_folds: Annotated[
        Optional[int],
        typer.Option(min=2, max=limits.MAX_FOLDS, help="Inner folds of the training rows the search validates on \\[default: 3].", show_default=False),
    ] = None,
    n_jobs: Annotated[
        Optional[int],
        typer.Option(min=1, max=limits.MAX_N_JOBS, help="Search runs trained at once, each on one thread \\[default: 1].", show_default=False),
    ] = None,
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
    stream: Annotated[
        Optional[bool],
        typer.Option(
            "--stream/--no-stream",
            # A panel of its own: its second name would take a column in the main one,
            # squeezing every option's help there to a few letters at 80 columns.
            rich_help_panel="Tables larger than memory",
            help="Read the table a chunk at a time and train from an encoded temporary file (in TMPDIR), in memory "
            "bounded by a chunk, not by the table \\[default: only for files over 256 MiB].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Train a fair classifier on a CSV and save it as a model bundle.

    The loss is gamma * I(T;S) + (1 - gamma) * BCE, with I(T;S) the information (in bits) the stochastic binary layer carries about the sensitive attribute.

    [bold]Examples[/]

      sqnn train sample_data/compas.csv --sensitive race --gamma 0.2

      sqnn train adult.csv.gz -t income -s sex --gamma 0.5 --test-size 0.3 --out adult-model/

      sqnn train sample_data/compas.csv -s race --method joint --gamma 0.5

      sqnn train sample_data/adult.csv.gz -t income -s sex --max-dp 0.05 --test-size 0.3 --n-jobs 2
    """
    bounds = {"max_dp": max_dp, "max_eo": max_eo, "min_dp_ratio": min_dp_ratio, "min_eo_ratio": min_eo_ratio, "max_gpa": max_gpa, "max_audc": max_audc}
    options = _plain_options(
        {"sensitive": sensitive, **dataclasses.asdict(training), "gamma": gamma, **bounds, "search_gammas": search_gammas,
         "search_folds": search_folds, "threads": threads, "test_size": test_size, "threshold": threshold,
         "min_group_size": min_group_size, "sep": sep}
    )  # fmt: skip
    from . import pipeline
    from .bundle import check_writable, default_bundle_path, save_bundle
    from .splits import check_test_size

    search = _gamma_search(gamma, _metric_gates(**bounds), search_gammas, search_folds, n_jobs)
    if test_size is not None:
        check_test_size(test_size)  # before the table is read or a search announced
    estimator = training.estimator(defaults.GAMMA if gamma is None else gamma)
    bundle_dir = out if out is not None else default_bundle_path(data)
    check_writable(bundle_dir, overwrite=overwrite, inputs=(data,))
    streamed = _streams(data, stream, test_size=test_size, search=search)
    options["stream"] = streamed  # as decided: given, or by the file's size
    frame, table = _training_table(data, sep, streamed, training.target, sensitive)
    roles = training.roles(frame, sensitive)
    if out is None:
        report.info(err, f"the model will be written to {bundle_dir}/ (choose with --out)")
    choice = None
    if search is not None:
        choice = _searched_gamma(frame, roles, estimator, search, training, test_size, threshold, min_group_size, json_output)
        estimator.set_params(gamma=choice.gamma)

    with report.training_progress(err, training.epochs) as on_epoch:
        held_out = {"test_size": test_size, "threshold": threshold, "min_group_size": min_group_size}
        outcome = _streamed_training(table, roles, estimator, training, held_out, on_epoch) if streamed else pipeline.train(
            frame,
            roles,
            estimator,
            drop_missing=training.drop_missing,
            inf_as_missing=training.inf_as_missing,
            test_size=test_size,
            threshold=threshold,
            min_group_size=min_group_size,
            epoch_callback=on_epoch,
        )
    meta = pipeline.training_meta(outcome, data_path=data, options=options)
    if choice is not None:
        meta["gamma_search"] = choice.to_dict()
    saved = save_bundle(bundle_dir, outcome.model, meta=meta, overwrite=overwrite)

    _warn_dropped(outcome.rows_dropped)
    rule, last = estimator.threshold_rule_, estimator.history_[-1]
    report.info(
        err,
        f"trained on {outcome.rows_trained} rows in {outcome.seconds:.1f} s: final {report.epoch_figures(last)}; "
        f"decision threshold {estimator.threshold_:.4g} ({rule}); model saved to {saved}/",
    )
    if outcome.test is not None:
        for note in report.evaluation_warnings(outcome.test, min_group_size):
            report.warn(err, note)
        if not json_output:
            report.render_evaluation(err, outcome.test.result, title=f"held-out split ({test_size:g})")
            report.info(err, report.threshold_note(outcome.test, rule=rule))
            for note in report.weight_notes(outcome.test.weight_column):
                report.info(err, note)
    if not json_output:
        report.info(err, _next_step(saved, data, held_out=outcome.test is not None))
    if json_output:
        searched = {"gamma_search": choice.to_dict()} if choice is not None else {}
        typer.echo(report.to_json({"model": str(saved), **outcome.to_dict(), **searched}))


def _streams(data: Path, stream: bool | None, *, test_size: float | None, search: Any) -> bool:
    """Whether train streams the table: as --stream/--no-stream say, else when the file is
    larger than streaming.STREAM_FILE_BYTES. Options streamed training cannot honour are
    refused, naming the way out."""
    from .streaming import STREAM_FILE_BYTES

    limit = f"{STREAM_FILE_BYTES // 2**20} MiB"
    if stream is None:
        stream = data.is_file() and data.stat().st_size > STREAM_FILE_BYTES
        why = f"the file is over {limit}; --no-stream reads it whole"
    else:
        why = "--stream"
    if not stream:
        return False
    if search is not None:
        raise InputError(
            f"{search.constraints[0].option} (a search for gamma) is not available when train streams the table "
            f"({why}); search on a sample of the table and pass the gamma found with --gamma, or pass --no-stream"
        )
    held_out = "" if test_size is None else "; --test-size holds out each row by a seeded draw (not a stratified split)"
    report.info(err, f"streaming {data.name} ({why}): encoded a chunk at a time into a temporary file, trained from it{held_out}")
    return True


def _training_table(data: Path, sep: str | None, streamed: bool, target: str | None, sensitive: list[str]) -> tuple[Any, Any]:
    """(the frame train resolves the columns' roles from, the table to stream or None): the
    whole table, or the distinct values of its target and sensitive columns."""
    if not streamed:
        return _read_table(data, sep), None
    from .streaming import distinct_values

    table = _read_table_chunks(data, sep)
    return distinct_values(table, [target if target is not None else table.columns[-1], *sensitive]), table


def _streamed_training(table: Any, roles: Any, estimator: Any, training: TrainingOptions, held_out: dict[str, Any], on_epoch: Any) -> Any:
    from .streaming import StreamedTraining, train_file

    settings = StreamedTraining(drop_missing=training.drop_missing, inf_as_missing=training.inf_as_missing, **held_out)
    with _terminate_as_interrupt():
        return train_file(table, roles, estimator, settings, epoch_callback=on_epoch)


@contextlib.contextmanager
def _terminate_as_interrupt() -> Any:
    """SIGTERM (a scheduler's time limit, a plain `kill`) ends the block as Ctrl-C does, so
    streamed training deletes its temporary files (gigabytes for a large table) on the way
    out rather than leaving them behind."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _next_step(model: Path, data: Path, *, held_out: bool) -> str:
    """What to run after train: scoring needs rows the model never saw, which train cannot
    tell apart (a file may be a whole table or the training part of a split), so it says
    both ways."""
    bundle = shlex.quote(f"{model}/")
    if held_out:
        return f"next: sqnn evaluate {bundle} NEW.csv scores other rows; sqnn audit-representation {bundle} NEW.csv audits the code"
    return (
        f"next: sqnn evaluate {bundle} TEST.csv on rows this model never saw (if {shlex.quote(str(data))} is a whole "
        "table rather than the training part of `sqnn split`, split it first and train on the training part, "
        "or train with --test-size 0.3)"
    )


def _gamma_search(gamma: float | None, bounds: list[Gate], gammas: str | None, folds: int | None, n_jobs: int | None) -> Any:
    """What train searches gamma for, or None when it trains the gamma given (or the default)."""
    from .pipeline import GammaSearch
    from .sweep import gamma_grid

    if not bounds:
        given = [flag for flag, value in (("--search-gammas", gammas), ("--search-folds", folds), ("--n-jobs", n_jobs)) if value is not None]
        if given:
            raise InputError(f"{given[0]} sets how gamma is searched; give a bound to search for, e.g. --max-dp 0.05")
        return None
    if gamma is not None:
        raise InputError(
            f"--gamma and {bounds[0].option} do not go together: {bounds[0].option} on train searches the gamma that meets it; "
            "to judge a model trained at --gamma, pass the bound to `sqnn evaluate`"
        )
    try:
        grid = gamma_grid(_parse_floats(gammas, "--search-gammas"), 2) if gammas is not None else GammaSearch.gammas
    except ParameterError as exc:
        raise InputError(exc.worded(lambda name: "--search-gammas" if name == "gammas" else _flag(name))) from None
    return GammaSearch(constraints=tuple(bounds), gammas=tuple(grid), folds=folds or GammaSearch.folds, n_jobs=n_jobs or 1)


def _searched_gamma(frame, roles, estimator, search, training, test_size, threshold, min_group_size, json_output) -> Any:
    """Run the search with progress, show its validation table, and stop with exit 1 (no
    model written) when no gamma meets every bound."""
    from . import pipeline

    bounds = ", ".join(f"{gate.option} {gate.bound:g}" for gate in search.constraints)
    report.info(err, f"searching gamma for {bounds}: {len(search.gammas)} gammas x {search.folds} inner folds of the training rows")
    with report.task_progress(err) as progress:
        choice = pipeline.search_gamma(
            frame, roles, estimator, search, test_size=test_size, drop_missing=training.drop_missing,
            inf_as_missing=training.inf_as_missing, threshold=threshold, min_group_size=min_group_size,
            on_progress=lambda done, total: progress("search", done, total),
        )  # fmt: skip
    if not json_output:
        report.render_gamma_search(err, choice)
    if choice.gamma is None:
        from .constraints import why_none

        message = worded(f"no gamma meets {bounds} on the inner folds; {why_none(choice)}; no model was written", _flag)
        report.error(err, message)
        if json_output:
            typer.echo(report.to_json({"error": message, "exit_code": EXIT_GATE, "gamma_search": choice.to_dict()}))
        raise typer.Exit(EXIT_GATE)
    report.info(err, f"gamma {choice.gamma:g}: the largest inner-fold AUC among the gammas that meet {bounds}")
    return choice


# -- evaluate -------------------------------------------------------------------------
@app.command()
@_command
@_with_gate_options
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
    weight: ScoringWeightOpt = None,
    unweighted: UnweightedOpt = False,
    *,
    gates: GateOptions,
    seed: Annotated[
        Optional[int], typer.Option(min=0, max=limits.MAX_SEED, help="Seeds the bootstrap resamples of --ci \\[default: 0].", show_default=False)
    ] = None,
    sep: SepOpt = None,
) -> None:
    """Score a labelled CSV with a trained model: accuracy, fairness and per-group metrics.

    Column roles (target, sensitive columns, features, sample weights), the target's labels and the decision threshold come from the model bundle. A gate whose metric cannot be estimated fails, and so does a fairness gate on a model that predicts one class for every row: neither ever passes silently.

    [bold]Examples[/]

      sqnn evaluate compas-model/ sample_data/compas.csv

      sqnn evaluate compas-model/ test.csv --json --max-gpa 0.1 --min-auc 0.7

      sqnn evaluate compas-model/ test.csv --max-dp 0.1 --min-balanced-accuracy 0.6 --threshold 0.4

      sqnn evaluate compas-model/ test.csv --min-dp-ratio 0.8

      sqnn evaluate compas-model/ test.csv --ci 0.95 --max-dp 0.1 --gate-on bound
    """
    from . import pipeline
    from .bundle import load_bundle
    from .streaming import evaluate_file

    resampling = gates.resampling(seed)
    fitted = load_bundle(model).model
    settings = pipeline.EvaluationSettings(
        threshold=threshold, n_samples=samples, min_group_size=min_group_size, drop_missing=drop_missing,
        inf_as_missing=inf_as_missing, bootstrap=resampling, weighting=pipeline.Weighting(weight, unweighted),
    )  # fmt: skip
    evaluation = evaluate_file(fitted, _read_table_chunks(data, sep), settings)
    result = evaluation.result
    outcomes = gates.judge(evaluation)

    for note in report.evaluation_warnings(evaluation, min_group_size):
        report.warn(err, note)
    _conclude(
        evaluation.to_dict(),
        outcomes,
        json_output=json_output,
        render=lambda: report.render_evaluation(
            err, result, title=f"{data.name} scored by {model.name or model}", intervals=evaluation.intervals
        ),
        notes=[report.threshold_note(evaluation, rule=fitted.estimator.threshold_rule_), *report.weight_notes(evaluation.weight_column)],
    )


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
    full_precision: Annotated[
        bool, typer.Option("--full-precision", help="Write every digit of the scores (by default they are rounded to 6 decimals).")
    ] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing output file.")] = False,
    sep: SepOpt = None,
) -> None:
    """Score a CSV: writes its rows with a `score` (p(positive class)) and a `prediction` column.

    The prediction is written in the target's own labels when it had two values in training (else 1 for the positive class, 0 for any other). Only the feature columns are needed; the target and sensitive columns may be absent.

    [bold]Examples[/]

      sqnn predict compas-model/ sample_data/compas.csv --out scores.csv

      sqnn predict compas-model/ new.csv --out scores.csv.gz --id person_id
    """
    from . import pipeline
    from .bundle import load_bundle
    from .data import check_table_output
    from .streaming import predict_file

    check_table_output(out, overwrite=overwrite, inputs=(data,))
    fitted = load_bundle(model).model
    settings = pipeline.PredictionSettings(
        threshold=threshold, n_samples=samples, id_column=id_column, inf_as_missing=inf_as_missing,
        score_digits=None if full_precision else pipeline.SCORE_DIGITS,
    )  # fmt: skip
    predicted = predict_file(fitted, _read_table_chunks(data, sep), out, settings, overwrite=overwrite)
    for note in report.encoding_notes(predicted.encoding):
        report.warn(err, note)
    cut = fitted.estimator.decision_threshold(threshold)
    where = "the model's own, chosen in training" if threshold is None else "given with --threshold"
    positive, negative = pipeline.predicted_labels(fitted.roles)
    report.info(
        err,
        f"wrote {predicted.rows} scored rows to {predicted.path}; prediction = {positive!r} where score >= {cut:.4g} ({where}), "
        f"else {negative!r}",
    )


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
    weight: ScoringWeightOpt = None,
    unweighted: UnweightedOpt = False,
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
    fitted = load_bundle(model).model
    frame = _read_table(data, sep)
    with report.task_progress(err) as progress:
        outcome = pipeline.audit(
            fitted, frame,
            settings=pipeline.AuditSettings(trees=trees, test_size=test_size, draws=draws, seed=seed, n_jobs=n_jobs),
            interventions=pipeline.InterventionSettings(
                mode=mode.value, random_repeats=random_repeats, threshold=threshold, min_group_size=min_group_size,
                n_samples=samples,
            ) if interventions else None,
            drop_missing=drop_missing, inf_as_missing=inf_as_missing, weighting=pipeline.Weighting(weight, unweighted),
            progress=progress,
        )  # fmt: skip
    gates = gates_from_options(
        {
            "--max-adrg": ("adrg", "max", max_adrg),
            "--max-leakage-auc": ("leakage_auc", "max", max_leakage_auc),
            "--max-mi": ("mi_joint", "max", max_mi),
        }
    )
    outcomes = check_gates(outcome.gated_values(), gates)
    _warn_dropped(outcome.rows_dropped)
    for note in report.encoding_notes(outcome.encoding) + report.audit_notes(outcome.audit):
        report.warn(err, note)
    for note in report.weight_notes(outcome.weight_column):
        report.info(err, note)
    if plot is not None and outcome.interventions:
        report.plot_interventions(outcome.interventions, plot, title=f"{model.name}: interventions on {data.name}")
        report.info(err, f"wrote the intervention plot to {plot}")

    def render() -> None:
        report.render_audit(err, outcome.audit, title=f"representation audit of {model.name or model} on {data.name}")
        if outcome.interventions:
            report.render_interventions(err, outcome.interventions, mode=mode.value)

    _conclude(outcome.to_dict(), outcomes, json_output=json_output, render=render)


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
    weight: ScoringWeightOpt = None,
    unweighted: UnweightedOpt = False,
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
    outcome = pipeline.prune(
        load_bundle(model), _read_table(data, sep), k=k, by=by.value, mode=mode.value, data_path=data, seed=seed, drop_missing=drop_missing,
        inf_as_missing=inf_as_missing, weighting=pipeline.Weighting(weight, unweighted),
    )
    saved = save_bundle(out, outcome.model, meta=outcome.meta, overwrite=overwrite, inputs=(model,))
    removed = ", ".join(str(i) for i in outcome.removed)
    report.info(err, f"removed neuron(s) {removed} (by {by.value}, {mode.value}); pruned model saved to {saved}/")


# -- sweep-gamma ----------------------------------------------------------------------
@app.command("sweep-gamma")
@_command
@_with_training_options
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
    *,
    training: TrainingOptions,
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

      sqnn sweep-gamma train.csv -s race --test test.csv --gammas 0,0.1,0.2,0.3 --out sweep-on-test/ --json

      sqnn sweep-gamma data.csv -s race --out sweep-gated/ --max-gpa 0.1 --min-auc 0.7 --min-correlation 0.9
    """
    options = _plain_options(
        {"sensitive": sensitive, "gammas": gammas, "steps": steps, "folds": folds, "test": test, **dataclasses.asdict(training),
         "threshold": threshold, "min_group_size": min_group_size, "audit": audit, "trees": trees,
         "max_gpa": max_gpa, "max_audc": max_audc, "min_auc": min_auc, "min_correlation": min_correlation, "sep": sep}
    )  # fmt: skip
    from . import sweep
    from .data import file_sha256

    request = sweep.SweepRequest(
        out=out, estimator=training.estimator(0.0), gammas=_parse_floats(gammas, "--gammas") if gammas is not None else None,
        steps=steps, folds=folds, n_jobs=n_jobs, backend=backend.value, scheduler=scheduler, overwrite=overwrite,
        options=options,
        settings=sweep.RunSettings(
            drop_missing=training.drop_missing, inf_as_missing=training.inf_as_missing, threshold=threshold,
            min_group_size=min_group_size, audit=audit, trees=trees,
        ),
    )  # fmt: skip
    frame = _read_table(data, sep)
    roles = training.roles(frame, sensitive)
    test_frame = _read_table(test, sep) if test is not None else None
    tables = sweep.SweepData(frame, roles, test_frame, file_sha256(data), file_sha256(test) if test is not None else None)

    def write_plot(summary: Any, directory: Path) -> Optional[Path]:
        title = f"{data.name}: gamma sweep ({training.method.value})"
        return report.plot_tradeoff(summary, directory / sweep.PLOT_FILE, title=title) if plot and summary.rows else None

    with report.task_progress(err) as progress:
        result = sweep.run_sweep(
            request, tables, on_note=lambda note: (report.warn if note.warning else report.info)(err, note.worded(_flag)),
            on_progress=lambda done, total: progress("runs", done, total), on_summary=write_plot,
        )  # fmt: skip
    summary = result.summary
    for path in result.written_by_caller:
        report.info(err, f"wrote {path}")
    gates = gates_from_options(
        {
            "--max-gpa": ("gpa", "max", max_gpa),
            "--max-audc": ("audc", "max", max_audc),
            "--min-auc": ("auc", "min", min_auc),
            "--min-correlation": ("spearman_gpa", "min", min_correlation),
        }
    )
    title = f"gamma sweep of {data.name} ({training.method.value}, {summary.folds} fold(s))"
    interrupted = (
        f"interrupted: {summary.runs_finished} of {result.planned} runs finished and are kept; rerun the same command to resume"
    )
    _conclude(
        {**summary.to_dict(), "interrupted": result.interrupted},
        check_gates(summary.gated_values(), gates),
        json_output=json_output,
        render=lambda: report.render_sweep(err, summary, title=title),
        notes=[f"summary written to {result.summary_csv} and {result.summary_json}"],
        interrupted=interrupted if result.interrupted else None,
    )


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


# -- report ---------------------------------------------------------------------------
ReportFormat = _choices("ReportFormat", "html", "md")
_STDOUT = Path("-")
_REPORT_SUFFIXES = {"html": (".html", ".htm"), "md": (".md", ".markdown")}


@app.command("report")
@_command
@_with_gate_options
def report_document(
    model: ModelArg,
    data: DataArg,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", help="File to write the report to, or - for stdout \\[default: report.html, or report.md with --format md; none when only --markdown is given].", show_default=False),
    ] = None,
    output_format: Annotated[
        ReportFormat, typer.Option("--format", help="What --out holds: html (one self-contained page, plots embedded) or md (GitHub Markdown).")
    ] = ReportFormat("html"),
    markdown: Annotated[
        Optional[Path],
        typer.Option("--markdown", help="Also write the Markdown variant to this file, or - for stdout (for a CI step summary).", show_default=False),
    ] = None,
    sweep: Annotated[
        Optional[Path], typer.Option("--sweep", help="Sweep directory (sqnn sweep-gamma --out) whose trade-off curve to include.", show_default=False)
    ] = None,
    audit: Annotated[bool, typer.Option("--audit", help="Also audit the representation (random forests, I(T;S)) as audit-representation does.")] = False,
    trees: Annotated[
        Optional[int],
        typer.Option(min=1, max=limits.MAX_TREES, help="Trees per random forest with --audit (the paper used 1000) \\[default: 1000].", show_default=False),
    ] = None,
    seed: Annotated[
        Optional[int],
        typer.Option(min=0, max=limits.MAX_SEED, help="Seeds the bootstrap resamples of --ci and the audit's split, forests and estimates \\[default: 0].", show_default=False),
    ] = None,
    threshold: ThresholdOpt = None,
    samples: SamplesOpt = None,
    threads: ThreadsOpt = None,
    min_group_size: MinGroupOpt = 30,
    drop_missing: DropMissingOpt = False,
    inf_as_missing: InfAsMissingOpt = False,
    weight: ScoringWeightOpt = None,
    unweighted: UnweightedOpt = False,
    *,
    gates: GateOptions,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace existing report files.")] = False,
    sep: SepOpt = None,
) -> None:
    """Write a report to hand on: one self-contained HTML file (plots embedded, nothing fetched), or GitHub Markdown for a CI step summary.

    It holds the data and column roles, the model's options, every metric and the per-group table with the gates given (evaluate's options, same rules: exit 1 when one is breached, after the report is written), the representation audit with --audit, the trade-off curve of a sweep with --sweep, and what the figures do not show.

    [bold]Examples[/]

      sqnn report compas-model/ test.csv --out report.html

      sqnn report compas-model/ test.csv --sweep sweep/ --audit --trees 200 --ci 0.95 --min-dp-ratio 0.8 --out report.html

      sqnn report compas-model/ test.csv --format md --out - >> "$GITHUB_STEP_SUMMARY"
    """
    from . import document, pipeline
    from .bundle import load_bundle
    from .data import file_sha256
    from .files import check_output_file

    if not audit and trees is not None:
        raise InputError("--trees sets the forests of --audit; add --audit")
    if seed is not None and not audit and gates.ci is None:
        raise InputError("--seed seeds --ci's resamples and --audit's forests; add one of them")
    resampling = gates.resampling(seed, seed_used_elsewhere=audit)
    targets = _report_targets(out, output_format.value, markdown)
    protected = _report_inputs(model, data, sweep)
    for path, _ in targets:
        if path != _STDOUT:
            check_output_file(path, overwrite=overwrite, inputs=protected)
    swept = document.read_sweep(sweep) if sweep is not None else None
    bundle = load_bundle(model)
    frame = _read_table(data, sep)
    weighting = pipeline.Weighting(weight, unweighted)
    evaluation = pipeline.evaluate(
        bundle.model, frame, threshold=threshold, n_samples=samples, min_group_size=min_group_size,
        drop_missing=drop_missing, inf_as_missing=inf_as_missing, bootstrap=resampling, weighting=weighting,
    )  # fmt: skip
    outcomes = gates.judge(evaluation)
    audited = None
    if audit:
        with report.task_progress(err) as progress:
            audited = pipeline.audit(
                bundle.model, frame, settings=pipeline.AuditSettings(trees=trees or 1000, seed=seed or 0), drop_missing=drop_missing,
                inf_as_missing=inf_as_missing, weighting=weighting, progress=progress,
            )  # fmt: skip
    for note in report.evaluation_warnings(evaluation, min_group_size):
        report.warn(err, note)
    written = document.build_document(
        document.ReportInputs(
            data_name=data.name, model_name=model.name or str(model), bundle=bundle, evaluation=evaluation,
            min_group_size=min_group_size, gates=tuple(outcomes), audit=audited, sweep=swept, data_sha256=file_sha256(data),
        )
    )  # fmt: skip
    for path, fmt in targets:
        if path == _STDOUT:
            typer.echo(document.render(written, fmt), nl=False)
        else:
            saved = document.write_document(written, path, fmt, overwrite=overwrite, inputs=protected)
            report.info(err, f"wrote the {'HTML' if fmt == 'html' else 'Markdown'} report to {saved}")
    # The gates' lines and exit 1 come after the report is written: a failing CI step still has it.
    _conclude({}, outcomes, json_output=False, render=lambda: None)


def _report_targets(out: Optional[Path], fmt: str, markdown: Optional[Path]) -> list[tuple[Path, str]]:
    """Where each form of the report goes: (path or _STDOUT, format)."""
    if out is None and markdown is None:
        out = Path(f"report.{fmt}")  # announced once written ("wrote the ... report to ...")
    if out is not None and out != _STDOUT:
        other = next(name for name in _REPORT_SUFFIXES if name != fmt)
        if out.suffix.lower() in _REPORT_SUFFIXES[other]:
            raise InputError(f"--out '{out}' ends in {out.suffix} but --format is {fmt}; pass --format {other}, or name the file {out.stem}{_REPORT_SUFFIXES[fmt][0]}")
    targets = [(path, kind) for path, kind in ((out, fmt), (markdown, "md")) if path is not None]
    if len(targets) == 2 and os.path.abspath(targets[0][0]) == os.path.abspath(targets[1][0]):
        raise InputError("--out and --markdown name the same file; give each its own")
    return targets


def _report_inputs(model: Path, data: Path, sweep: Optional[Path]) -> list[Path]:
    """Files a report must never overwrite: the data, and everything in the bundle and the sweep directory."""
    directories = [path for path in (model, sweep) if path is not None and path.is_dir()]
    return [data, *(entry for directory in directories for entry in directory.iterdir())]


def main() -> None:
    """The console script: usage errors become one ``error:`` line and exit 2, like every
    other bad input (typer's default is a framed panel)."""
    imports.defer("scipy.stats")
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
        message, code = f"{exc.format_message()}{hint}", getattr(exc, "exit_code", EXIT_INPUT)
        report.error(err, message)
        # Before the command ran, --json is only a word on the command line; a pipeline
        # that asked for JSON still gets one object.
        if "--json" in sys.argv[1:]:
            typer.echo(report.to_json({"error": message, "exit_code": code}))
        sys.exit(code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
