"""Quality and fairness gates: bounds a CI pipeline puts on reported metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

__all__ = ["Gate", "GateOutcome", "check_gates", "gates_from_options", "FAIRNESS_METRICS"]

# Metrics that a constant classifier satisfies trivially: every row in one class gives a
# DP and EO difference of 0, and constant scores give a GPA and AUDC of 0.
FAIRNESS_METRICS = frozenset({"gpa", "audc", "dp_difference", "eo_difference"})


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
    """The gate failed because the model predicts one class for every row."""

    @property
    def message(self) -> str:
        gate = self.gate
        if self.degenerate:
            shown = "n/a" if self.value is None else f"{self.value:.4f}"
            return (
                f"{gate.metric} = {shown}, but the model predicts one class for every row, and a constant "
                f"classifier is trivially fair, so {gate.option} {gate.bound:g} fails "
                "(--allow-degenerate judges it anyway)"
            )
        if self.value is None:
            return f"{gate.metric} cannot be estimated on this data, so {gate.option} {gate.bound:g} fails"
        relation = "<=" if gate.kind == "max" else ">="
        verdict = "passed" if self.passed else "FAILED"
        return f"{gate.metric} = {self.value:.4f}, required {relation} {gate.bound:g}: {verdict}"

    def to_dict(self) -> dict:
        return {
            "gate": self.gate.option,
            "metric": self.gate.metric,
            "kind": self.gate.kind,
            "bound": self.gate.bound,
            "value": self.value,
            "passed": self.passed,
            "failed_as_degenerate": self.degenerate,
        }


def gates_from_options(options: Mapping[str, tuple[str, str, float | None]]) -> list[Gate]:
    """Gates for the options the user gave: ``{option: (metric, kind, bound or None)}``."""
    return [Gate(metric, bound, kind, option) for option, (metric, kind, bound) in options.items() if bound is not None]


def check_gates(
    values: Mapping[str, float | None], gates: Sequence[Gate], *, degenerate: bool = False, allow_degenerate: bool = False
) -> list[GateOutcome]:
    """Check each gate; a metric that is missing or NaN fails its gate, never passes it,
    and so does a fairness metric of a ``degenerate`` model (one class for every row)
    unless ``allow_degenerate``."""
    outcomes = []
    for gate in gates:
        raw = values.get(gate.metric)
        value = None if raw is None or not math.isfinite(float(raw)) else float(raw)
        trivial = degenerate and not allow_degenerate and gate.metric in FAIRNESS_METRICS
        if value is None or trivial:
            passed = False
        elif gate.kind == "max":
            passed = value <= gate.bound
        else:
            passed = value >= gate.bound
        outcomes.append(GateOutcome(gate=gate, value=value, passed=passed, degenerate=trivial))
    return outcomes
