"""Quality and fairness gates: bounds a CI pipeline puts on reported metrics."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Mapping, Sequence

from .jsonable import plain

__all__ = ["Gate", "GateOutcome", "check_gates", "gates_from_options", "THRESHOLD_FAIRNESS", "SCORE_FAIRNESS"]

# Fairness a constant classifier meets trivially: every row in one class gives a DP and an
# EO difference of 0 and ratios of 1 (or NaN); every row with one score gives a GPA and an AUDC of 0 as well.
THRESHOLD_FAIRNESS = frozenset({"dp_difference", "eo_difference", "dp_ratio", "eo_ratio"})
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
    confidence_level: float | None = None
    """Set when the gate was judged on the pessimistic end of the metric's confidence
    interval at this level; ``value`` is then that end."""
    estimate: float | None = None
    """With ``confidence_level``: the metric's own value, for the record."""

    @property
    def judged_on(self) -> str:
        if self.confidence_level is None:
            return "value"
        return "upper_bound" if self.gate.kind == "max" else "lower_bound"

    @property
    def _judged(self) -> str:
        """What was compared with the bound, in words."""
        if self.confidence_level is None:
            return self.gate.metric
        end = "upper" if self.gate.kind == "max" else "lower"
        return f"{self.gate.metric}'s {end} {self.confidence_level * 100:g}% bound"

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
            return f"{self._judged} cannot be estimated on this data, so {gate.option} {gate.bound:g} fails"
        relation = "<=" if gate.kind == "max" else ">="
        verdict = "passed" if self.passed else "FAILED"
        estimate = "" if self.confidence_level is None or self.estimate is None else f" (estimate {self.estimate:.4f})"
        return f"{self._judged} = {self.value:.4f}{estimate}, required {relation} {gate.bound:g}: {verdict}"

    def to_dict(self) -> dict:
        return plain({
            "gate": self.gate.option,
            "metric": self.gate.metric,
            "kind": self.gate.kind,
            "bound": self.gate.bound,
            "value": self.value,
            "passed": self.passed,
            "failed_as_degenerate": self.degenerate,
            "judged_on": self.judged_on,
            **({"ci": self.confidence_level, "estimate": self.estimate} if self.confidence_level is not None else {}),
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
    intervals: Mapping[str, Sequence[float] | None] | None = None,
    confidence_level: float | None = None,
) -> list[GateOutcome]:
    """Check each gate; a metric that is missing or NaN fails its gate, never passes it.
    Unless ``allow_degenerate``, so does DP or EO of a ``degenerate`` model (one class for
    every row), and any fairness metric of a model with ``constant_scores``.

    Given ``intervals`` (metric -> (lower, upper) at ``confidence_level``), each gate is
    judged on the pessimistic end of its metric's interval: the upper end for a ceiling
    ("max"), the lower end for a floor ("min"), so a pass means the bound holds with that
    confidence. A metric without an interval fails its gate."""
    trivially_fair = (THRESHOLD_FAIRNESS if degenerate else set()) | (
        THRESHOLD_FAIRNESS | SCORE_FAIRNESS if constant_scores else set()
    )
    outcomes = []
    for gate in gates:
        estimate = _finite(values.get(gate.metric))
        value = estimate
        if intervals is not None:
            interval = intervals.get(gate.metric)
            value = None if interval is None else _finite(interval[1] if gate.kind == "max" else interval[0])
        trivial = gate.metric in trivially_fair and not allow_degenerate
        if value is None or trivial:
            passed = False
        elif gate.kind == "max":
            passed = value <= gate.bound
        else:
            passed = value >= gate.bound
        on_bound = {"confidence_level": confidence_level, "estimate": estimate} if intervals is not None else {}
        outcomes.append(GateOutcome(gate=gate, value=value, passed=passed, degenerate=trivial, **on_bound))
    return outcomes


def _finite(raw: float | None) -> float | None:
    return None if raw is None or not math.isfinite(float(raw)) else float(raw)
