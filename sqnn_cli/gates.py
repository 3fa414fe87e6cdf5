"""Quality and fairness gates: bounds a CI pipeline puts on reported metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

from .jsonable import plain

__all__ = ["Gate", "GateOutcome", "check_gates", "gates_from_options", "THRESHOLD_FAIRNESS", "SCORE_FAIRNESS"]

# Fairness a constant classifier meets trivially: every row in one class gives a DP and an
# EO difference of 0; every row with one score gives a GPA and an AUDC of 0 as well.
THRESHOLD_FAIRNESS = frozenset({"dp_difference", "eo_difference"})
SCORE_FAIRNESS = frozenset({"gpa", "audc"})


@dataclass(frozen=True)
class Gate:
    """``metric`` must stay at most (``max``) or at least (``min``) ``bound``; ``option``
    is the command-line flag that set it, so a failure names what the user typed."""

    metric: str
    bound: float
    kind: Literal["max", "min"]
    option: str


@dataclass(frozen=True)
class GateOutcome:
    gate: Gate
    value: float | None
    passed: bool
    degenerate: bool = False
    """The gate failed because the model is constant where its metric looks: one class for
    every row (DP, EO) or one score for every row (GPA, AUDC)."""

    @property
    def message(self) -> str:
        gate = self.gate
        if self.degenerate:
            shown = "n/a" if self.value is None else f"{self.value:.4f}"
            constant = "one class for" if gate.metric in THRESHOLD_FAIRNESS else "one score to"
            return (
                f"{gate.metric} = {shown}, but the model gives {constant} every row, and a constant "
                f"classifier is trivially fair, so {gate.option} {gate.bound:g} fails "
                "(--allow-degenerate judges it anyway)"
            )
        if self.value is None:
            return f"{gate.metric} cannot be estimated on this data, so {gate.option} {gate.bound:g} fails"
        relation = "<=" if gate.kind == "max" else ">="
        verdict = "passed" if self.passed else "FAILED"
        return f"{gate.metric} = {self.value:.4f}, required {relation} {gate.bound:g}: {verdict}"

    def to_dict(self) -> dict:
        return plain({
            "gate": self.gate.option,
            "metric": self.gate.metric,
            "kind": self.gate.kind,
            "bound": self.gate.bound,
            "value": self.value,
            "passed": self.passed,
            "failed_as_degenerate": self.degenerate,
        })


def gates_from_options(options: Mapping[str, tuple[str, str, float | None]]) -> list[Gate]:
    """Gates for the options the user gave: ``{option: (metric, kind, bound or None)}``."""
    return [Gate(metric, bound, kind, option) for option, (metric, kind, bound) in options.items() if bound is not None]


def check_gates(
    values: Mapping[str, float | None],
    gates: Sequence[Gate],
    *,
    degenerate: bool = False,
    constant_scores: bool = False,
    allow_degenerate: bool = False,
) -> list[GateOutcome]:
    """Check each gate; a metric that is missing or NaN fails its gate, never passes it.
    Unless ``allow_degenerate``, so does DP or EO of a ``degenerate`` model (one class for
    every row), and any fairness metric of a model with ``constant_scores``."""
    trivially_fair = (THRESHOLD_FAIRNESS if degenerate else set()) | (
        THRESHOLD_FAIRNESS | SCORE_FAIRNESS if constant_scores else set()
    )
    outcomes = []
    for gate in gates:
        raw = values.get(gate.metric)
        value = None if raw is None or not math.isfinite(float(raw)) else float(raw)
        trivial = gate.metric in trivially_fair and not allow_degenerate
        if value is None or trivial:
            passed = False
        elif gate.kind == "max":
            passed = value <= gate.bound
        else:
            passed = value >= gate.bound
        outcomes.append(GateOutcome(gate=gate, value=value, passed=passed, degenerate=trivial))
    return outcomes
